//! The connection's side of SASL: SaslHandshake and SaslAuthenticate are
//! answered here, in request order with the rest, because their outcome
//! changes who the connection is. A failed authentication is answered
//! after `failed_authentication_delay_ms` and the connection then closes.

use super::writer::Outgoing;
use super::{client_log, frame, Connection, Finished};
use crate::broker::Broker;
use crate::limits::Admitted;
use crate::protocol::Request;
use crate::security::sasl::{Accepted, Credentials};
use crate::security::scram::{ScramCredential, ScramMechanism};
use crate::security::Secret;
use actix::{ActorContext, AsyncContext, Context};
use bytes::Bytes;
use kafka_protocol::messages::{
    RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Credentials for Broker {
    fn plain_password(&self, user: &str) -> Option<&Secret> {
        self.config().sasl_plain_users.get(user)
    }

    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        Broker::scram_credential(self, user, mechanism)
    }
}

impl Connection {
    /// Serves a SaslHandshake or SaslAuthenticate request.
    pub(super) fn authentication_request(
        &mut self,
        seq: u64,
        request: Request,
        admitted: Admitted,
        ctx: &mut Context<Self>,
    ) {
        let (api_key, version) = (request.api_key, request.version);
        let (body, failure) = match request.body {
            RequestKind::SaslHandshake(req) => self.handshake(&req.mechanism, version),
            RequestKind::SaslAuthenticate(req) => {
                self.authenticate(&req.auth_bytes, Instant::now())
            }
            other => {
                let why = format!("{:?} is not an authentication request", other);
                return self.close("bad_request", &why, ctx);
            }
        };
        let response = match frame::encode(api_key, version, request.correlation_id, &body) {
            Ok(bytes) => bytes,
            Err(why) => {
                let why = format!("cannot encode {api_key:?} response: {why}");
                return self.close("unencodable_response", &why, ctx);
            }
        };
        let finished = Finished {
            response: Some(Outgoing::Frame(response)),
            admitted,
        };
        match failure {
            None => self.complete(seq, finished),
            Some(why) => self.fail(seq, finished, &why, ctx),
        }
    }

    /// The response to SaslHandshake, and why the connection must close.
    fn handshake(&mut self, mechanism: &str, version: i16) -> (ResponseKind, Option<String>) {
        let response = SaslHandshakeResponse::default();
        let Some(sasl) = &mut self.sasl else {
            let response = response.with_error_code(ResponseError::IllegalSaslState.code());
            return (ResponseKind::SaslHandshake(response), None);
        };
        let mechanisms = sasl
            .mechanism_names()
            .into_iter()
            .map(StrBytes::from_static_str)
            .collect();
        let response = response.with_mechanisms(mechanisms);
        match sasl.handshake(mechanism, version) {
            Ok(()) => (ResponseKind::SaslHandshake(response), None),
            Err((error, why)) => {
                let response = response.with_error_code(error.code());
                (ResponseKind::SaslHandshake(response), Some(why))
            }
        }
    }

    /// The response to SaslAuthenticate, and why the connection must close.
    fn authenticate(&mut self, token: &[u8], now: Instant) -> (ResponseKind, Option<String>) {
        let response = SaslAuthenticateResponse::default();
        let Some(sasl) = &mut self.sasl else {
            let response = response.with_error_code(ResponseError::IllegalSaslState.code());
            return (ResponseKind::SaslAuthenticate(response), None);
        };
        match sasl.authenticate(token, &*self.broker, now) {
            Ok(accepted) => {
                let lifetime = accepted.session_lifetime_ms;
                let token = self.accepted(accepted);
                let response = response
                    .with_auth_bytes(token)
                    .with_session_lifetime_ms(lifetime);
                (ResponseKind::SaslAuthenticate(response), None)
            }
            Err(why) => {
                let response = response
                    .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                    .with_error_message(Some(StrBytes::from_string(why.clone())));
                (ResponseKind::SaslAuthenticate(response), Some(why))
            }
        }
    }

    /// A bare token after a v0 handshake; answered with a bare token, and a
    /// failure closes the connection without an answer, as Kafka does.
    pub(super) fn raw_token(
        &mut self,
        seq: u64,
        token: &[u8],
        admitted: Admitted,
        ctx: &mut Context<Self>,
    ) {
        let Some(sasl) = &mut self.sasl else {
            return;
        };
        match sasl.authenticate(token, &*self.broker, Instant::now()) {
            Ok(accepted) => {
                let token = self.accepted(accepted);
                let finished = Finished {
                    response: Some(Outgoing::Frame(token)),
                    admitted,
                };
                self.complete(seq, finished);
            }
            Err(why) => {
                self.reading = false;
                self.log_failure(&why);
                ctx.run_later(self.failure_delay(), |_, ctx| ctx.stop());
            }
        }
    }

    /// Takes on the principal of a completed exchange; the token to send.
    fn accepted(&mut self, accepted: Accepted) -> Bytes {
        if let Some(principal) = accepted.principal {
            log::debug!("{} authenticated as {principal}", self.peer);
            self.principal = Arc::new(principal);
            let max_frame = self.broker.config().max_request_bytes as usize;
            self.max_frame.store(max_frame, Ordering::Release);
        }
        Bytes::from(accepted.token)
    }

    /// Answers a failed authentication after the delay, reads nothing more
    /// and closes once the answer is written.
    fn fail(&mut self, seq: u64, finished: Finished, why: &str, ctx: &mut Context<Self>) {
        self.reading = false;
        self.log_failure(why);
        ctx.run_later(self.failure_delay(), move |connection, _| {
            connection.complete(seq, finished);
        });
    }

    fn failure_delay(&self) -> Duration {
        Duration::from_millis(self.broker.config().failed_authentication_delay_ms)
    }

    fn log_failure(&self, why: &str) {
        self.broker.metrics().rejected();
        client_log::warn(
            self.peer,
            "authentication_failed",
            format_args!("on listener {}: {why}", self.listener.name),
        );
    }
}
