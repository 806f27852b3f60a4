//! XEP-0082 DateTime profile: `CCYY-MM-DDThh:mm:ss[.sss]TZD`, as used by Delayed
//! Delivery (XEP-0203) stamps and Message Archive Management (XEP-0313) filters.
//!
//! Times are microseconds since the Unix epoch (UTC), the archive's unit. No clock
//! is read here: the caller supplies the time.

/// Microseconds in a second.
const MICROS: i64 = 1_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (the era-based day count:
/// 400-year eras of 146,097 days, years starting in March so leap days fall last).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Formats a time as a UTC DateTime with microseconds, e.g.
/// `2026-11-25T03:23:21.000123Z`.
pub fn format_micros(micros: i64) -> String {
    let secs = micros.div_euclid(MICROS);
    let frac = micros.rem_euclid(MICROS);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let in_day = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    )
}

/// Parses a DateTime into microseconds since the epoch; `None` if it is not one.
/// Fractions finer than a microsecond are cut off.
pub fn parse_micros(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let digits = |at: usize, n: usize| -> Option<i64> {
        let part = b.get(at..at + n)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0, |v, d| v * 10 + i64::from(d - b'0')))
    };
    let punct = |at: usize, c: u8| b.get(at) == Some(&c);
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if !separators.iter().all(|&(at, c)| punct(at, c)) {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    let days_in_month = days_from_civil(year + i64::from(month == 12), month % 12 + 1, 1)
        - days_from_civil(year, month, 1);
    if !(1..=12).contains(&month)
        || !(1..=days_in_month).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut at = 19;
    let mut frac = 0;
    if punct(at, b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            if at - start < 6 {
                frac = frac * 10 + i64::from(b[at] - b'0');
            }
            at += 1;
        }
        if at == start {
            return None;
        }
        for _ in (at - start)..6 {
            frac *= 10;
        }
    }
    let offset = match b.get(at) {
        Some(b'Z') if at + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if at + 6 == b.len() && punct(at + 3, b':') => {
            let (h, m) = (digits(at + 1, 2)?, digits(at + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = h * 60 + m;
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset * 60;
    Some(secs * MICROS + frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(format_micros(0), "1970-01-01T00:00:00.000000Z");
        // XEP-0082 §4's example instant.
        let t = parse_micros("1969-07-21T02:56:15Z").unwrap();
        assert_eq!(t, -14_159_025 * MICROS);
        assert_eq!(format_micros(t), "1969-07-21T02:56:15.000000Z");
        assert_eq!(
            parse_micros("1969-07-20T21:56:15-05:00"),
            Some(t),
            "the same instant with an offset"
        );
        assert_eq!(
            parse_micros("2000-02-29T12:00:00.5Z"),
            Some((951_825_600 * MICROS) + 500_000)
        );
    }

    #[test]
    fn format_and_parse_are_inverse_across_four_centuries() {
        // Every 9,973,000th second over 400 years, leap days and the year 2000 included.
        let mut micros = -4_000_000_000 * MICROS;
        while micros < 9_000_000_000 * MICROS {
            assert_eq!(parse_micros(&format_micros(micros)), Some(micros));
            micros += 9_973_000 * MICROS + 123_457;
        }
    }

    #[test]
    fn malformed_dates_are_refused() {
        for bad in [
            "",
            "2026-11-25",
            "2026-11-25T03:23:21",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-31T00:00:00Z",
            "2026-11-25T24:00:00Z",
            "2026-11-25T03:60:00Z",
            "2026-11-25T03:23:21.Z",
            "2026-11-25T03:23:21+0100",
            "2026-11-25T03:23:21Zjunk",
            "2026-1x-25T03:23:21Z",
            "２026-11-25T03:23:21Z",
        ] {
            assert_eq!(parse_micros(bad), None, "{bad}");
        }
    }
}
