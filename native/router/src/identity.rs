//! Which build of the router this is: the crate's version, and `+<id>` when it was built with
//! `ROUTER_BUILD_ID=<id>` in the environment (cargo rebuilds when that changes). Reported in the
//! "router ready" log line, `/healthz` and the `X-Rollout-Router` response header, so that after an
//! upgrade one can see which build answers.

use std::sync::OnceLock;

use http::HeaderValue;

pub fn build() -> &'static str {
    static BUILD: OnceLock<String> = OnceLock::new();
    BUILD.get_or_init(|| match option_env!("ROUTER_BUILD_ID") {
        Some(id) if !id.is_empty() => format!("{}+{id}", env!("CARGO_PKG_VERSION")),
        _ => env!("CARGO_PKG_VERSION").to_string(),
    })
}

pub fn header_value() -> HeaderValue {
    static VALUE: OnceLock<HeaderValue> = OnceLock::new();
    VALUE.get_or_init(|| HeaderValue::from_str(build()).unwrap_or(HeaderValue::from_static("rollout-router"))).clone()
}
