//! ApiVersions: which APIs and versions this broker serves, as the tables
//! in [`super`] state them.

use super::{AUTHENTICATION, SUPPORTED};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::ResponseError;

/// The response to ApiVersions; `error` is set for a version we do not know.
pub fn handle(error: Option<ResponseError>) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error.map_or(0, |e| e.code()))
        .with_api_keys(
            SUPPORTED
                .iter()
                .chain(AUTHENTICATION)
                .map(|&(key, min, max)| {
                    ApiVersion::default()
                        .with_api_key(key as i16)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect(),
        )
}
