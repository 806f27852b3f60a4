//! Findings and how they are printed: a table for people, a JSON array for programs.

use std::fmt::Write as _;

/// The grade of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The server does what the check asks.
    Pass,
    /// It does not (the detail says how).
    Fail,
    /// The check could not run: the server (or the command line) does not offer what it needs.
    NotOffered,
}

impl Verdict {
    /// `pass`, `fail` or `not-offered`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::NotOffered => "not-offered",
        }
    }
}

/// The result of one check.
#[derive(Clone, Debug)]
pub struct Finding {
    /// The check's name, e.g. `stunt-clienthello`.
    pub check: &'static str,
    /// Its grade.
    pub verdict: Verdict,
    /// One line on what happened.
    pub detail: String,
    /// Round trips of the login, when one completed.
    pub round_trips: Option<u32>,
    /// The transcript: what was sent (described) and what the server answered.
    pub evidence: String,
}

impl Finding {
    /// A finding with its evidence.
    pub fn new(check: &'static str, verdict: Verdict, detail: impl Into<String>) -> Finding {
        Finding {
            check,
            verdict,
            detail: detail.into(),
            round_trips: None,
            evidence: String::new(),
        }
    }

    /// With the transcript as evidence.
    pub fn evidence(mut self, evidence: impl Into<String>) -> Finding {
        self.evidence = evidence.into();
        self
    }

    /// With a round-trip count.
    pub fn round_trips(mut self, n: Option<u32>) -> Finding {
        self.round_trips = n;
        self
    }
}

/// The table: `check | result | detail`, then (with `verbose`) each check's evidence.
pub fn table(findings: &[Finding], verbose: bool) -> String {
    let check_width = findings
        .iter()
        .map(|f| f.check.len())
        .chain(["check".len()])
        .max()
        .unwrap_or(5);
    let result_width = "not-offered".len();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:check_width$}  {:result_width$}  detail",
        "check", "result"
    );
    for f in findings {
        let _ = writeln!(
            out,
            "{:check_width$}  {:result_width$}  {}",
            f.check,
            f.verdict.as_str(),
            f.detail
        );
        if verbose && !f.evidence.is_empty() {
            for line in f.evidence.lines() {
                let _ = writeln!(out, "    {line}");
            }
            out.push('\n');
        }
    }
    let count = |v: Verdict| findings.iter().filter(|f| f.verdict == v).count();
    let _ = write!(
        out,
        "\n{} passed, {} failed, {} not offered",
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::NotOffered)
    );
    if !verbose && findings.iter().any(|f| f.verdict == Verdict::Fail) {
        out.push_str(" (--verbose shows what the server answered)");
    }
    out.push('\n');
    out
}

/// One object of the JSON report.
#[derive(serde::Serialize)]
struct Row<'a> {
    check: &'a str,
    result: &'a str,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    round_trips: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    evidence: Option<&'a str>,
}

/// A JSON array of `{check, result, detail, round_trips?, evidence?}`: `round_trips` when
/// a login completed, `evidence` for failures (for every check with `verbose`).
pub fn json(findings: &[Finding], verbose: bool) -> String {
    let rows: Vec<Row<'_>> = findings
        .iter()
        .map(|f| Row {
            check: f.check,
            result: f.verdict.as_str(),
            detail: &f.detail,
            round_trips: f.round_trips,
            evidence: ((verbose || f.verdict == Verdict::Fail) && !f.evidence.is_empty())
                .then_some(f.evidence.as_str()),
        })
        .collect();
    let mut out = serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".into());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_omits_empty_fields_and_hides_passing_evidence() {
        let findings = [
            Finding::new("a", Verdict::Pass, "ok \"quoted\"")
                .round_trips(Some(3))
                .evidence("hidden"),
            Finding::new("b", Verdict::Fail, "bad").evidence("S: <x/>"),
            Finding::new("c", Verdict::NotOffered, "no"),
        ];
        let value: serde_json::Value = serde_json::from_str(&json(&findings, false)).unwrap();
        assert_eq!(
            value,
            serde_json::json!([
                {"check": "a", "result": "pass", "detail": "ok \"quoted\"", "round_trips": 3},
                {"check": "b", "result": "fail", "detail": "bad", "evidence": "S: <x/>"},
                {"check": "c", "result": "not-offered", "detail": "no"},
            ])
        );
        let value: serde_json::Value = serde_json::from_str(&json(&findings, true)).unwrap();
        assert_eq!(value[0]["evidence"], "hidden");
    }

    #[test]
    fn table_aligns_columns() {
        let findings = [
            Finding::new("short", Verdict::Pass, "fine"),
            Finding::new("a-longer-name", Verdict::NotOffered, "skipped"),
        ];
        let text = table(&findings, false);
        assert!(
            text.contains("short          pass         fine\n"),
            "{text}"
        );
        assert!(
            text.contains("a-longer-name  not-offered  skipped\n"),
            "{text}"
        );
        assert!(
            text.ends_with("1 passed, 0 failed, 1 not offered\n"),
            "{text}"
        );
    }
}
