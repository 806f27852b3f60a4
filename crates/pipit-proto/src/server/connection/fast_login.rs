//! FAST (XEP-0484) on the connection: token logins with their replay check,
//! and tokens issued on request.

use super::{FastExchange, Profile, ServerConnection, State};
use crate::jid::{Jid, prep_local};
use crate::sasl::{
    ChannelBindingInfo, HtMechanism, HtServer, HtTokenKey, SaslError, ht_token_string,
};
use crate::server::Event;
use crate::server::fast::{self, FastTokenRecord};
use crate::server::sasl2::Authenticate;
use crate::xml::Element;

impl ServerConnection {
    /// XEP-0484 §3.3: a fresh token for a mechanism we offer, when requested. The
    /// driver stores its hash (and the client's user-agent id, so that §3.5
    /// rotation can retire the older tokens of the same installation).
    pub(super) fn issue_fast_token(
        &mut self,
        jid: &Jid,
        request: &Authenticate,
    ) -> Option<Element> {
        let requested = request.fast.request_token.as_deref()?;
        let offered = fast::offered(&self.channel_binding_types());
        let mechanism = offered.into_iter().find(|m| m.name() == requested)?;
        let mut random = [0u8; 32];
        self.random.fill(&mut random);
        let token = ht_token_string(&random).ok()?;
        let key = HtTokenKey::from_token(&token)?;
        let expires_at = self.now + fast::TOKEN_LIFETIME_SECS;
        self.events.push_back(Event::IssueFastToken {
            jid: jid.clone(),
            key: *key.as_bytes(),
            mechanism: mechanism.name().to_owned(),
            expires_at,
            user_agent: request.user_agent.clone(),
        });
        Some(fast::token_element(&token, expires_at))
    }

    /// XEP-0484 §3.4: authentication with a FAST token. The driver looks up the
    /// account's tokens; the core checks the HMAC.
    pub(super) fn start_fast(
        &mut self,
        mechanism: HtMechanism,
        initial: Option<Vec<u8>>,
        request: Authenticate,
    ) {
        let profile = Profile::Sasl2(Box::new(request.clone()));
        let cb = ChannelBindingInfo {
            plus_advertised: true,
            data: self.transport.channel_bindings(self.end_point_hash()),
        };
        let (server, username) = match HtServer::start(mechanism, &initial.unwrap_or_default(), &cb)
        {
            Ok(started) => started,
            Err(e) => return self.sasl_failure(&profile, e),
        };
        let Ok(username) = prep_local(&username) else {
            return self.sasl_failure(&profile, SaslError::NotAuthorized);
        };
        let domain = self.domain.clone().unwrap_or_else(|| self.default_domain());
        self.events.push_back(Event::NeedFastTokens {
            username: username.clone(),
            domain,
        });
        self.state = State::FastTokens(FastExchange {
            server,
            username,
            request,
        });
    }

    /// Answers [`Event::NeedFastTokens`](crate::server::Event::NeedFastTokens) with the account's unexpired tokens.
    pub fn provide_fast_tokens(&mut self, tokens: Vec<FastTokenRecord>) {
        let State::FastTokens(exchange) = std::mem::replace(&mut self.state, State::Open) else {
            return;
        };
        let mechanism = exchange.server.mechanism().name();
        let found = tokens
            .iter()
            .filter(|t| t.mechanism == mechanism)
            .find(|t| HtTokenKey::from_stored(&t.key).is_some_and(|k| exchange.server.verify(&k)))
            .map(|t| t.key);
        match (found, exchange.request.fast.count) {
            (None, _) => {
                let profile = Profile::Sasl2(Box::new(exchange.request));
                self.sasl_failure(&profile, SaslError::NotAuthorized);
            }
            // §3.4: a count must be new; the store checks and records it atomically.
            (Some(key), Some(count)) => {
                let domain = self.domain.clone().unwrap_or_else(|| self.default_domain());
                self.events.push_back(Event::FastCount {
                    username: exchange.username.clone(),
                    domain,
                    key,
                    count,
                });
                self.state = State::FastCount(exchange, key);
            }
            (Some(key), None) => self.fast_success(exchange, key),
        }
        self.process();
        self.transport.flush(&mut self.out);
    }

    /// Answers [`Event::FastCount`](crate::server::Event::FastCount): whether the count was greater than any seen.
    pub fn provide_fast_count(&mut self, fresh: bool) {
        let State::FastCount(exchange, key) = std::mem::replace(&mut self.state, State::Open)
        else {
            return;
        };
        if fresh {
            self.fast_success(exchange, key);
        } else {
            let profile = Profile::Sasl2(Box::new(exchange.request));
            self.sasl_failure(&profile, SaslError::NotAuthorized);
        }
        self.process();
        self.transport.flush(&mut self.out);
    }

    pub(super) fn fast_success(&mut self, exchange: FastExchange, key: [u8; 32]) {
        let domain = self.domain.clone().unwrap_or_else(|| self.default_domain());
        let (Ok(jid), Some(token_key)) = (
            Jid::bare(&exchange.username, &domain),
            HtTokenKey::from_stored(&key),
        ) else {
            let profile = Profile::Sasl2(Box::new(exchange.request));
            return self.sasl_failure(&profile, SaslError::NotAuthorized);
        };
        let additional = exchange.server.success_data(&token_key);
        self.events.push_back(Event::Authenticated {
            jid: jid.clone(),
            mechanism: exchange.server.mechanism().name(),
            user_agent: exchange.request.user_agent.clone(),
        });
        self.events.push_back(if exchange.request.fast.invalidate {
            Event::RevokeFastToken {
                jid: jid.clone(),
                key,
            }
        } else {
            Event::FastTokenUsed {
                jid: jid.clone(),
                key,
                user_agent: exchange.request.user_agent.clone(),
            }
        });
        self.authenticated = Some(jid.clone());
        self.sasl2_success(jid, exchange.request, Some(additional));
    }
}
