//! Target `notify`: what reaches `POST /notify` and `PUT /notify/{Type}/{id}`, the
//! Subscription notification receiver: the authentication (token header, `?token=`,
//! HMAC signature over the body) and the body's reduction to work (Backport IG
//! notification Bundles, bare resources, rest-hook PUTs, empty bodies).
//!
//! Input, framed (`super::frame`), 4 lines then the body:
//!   1. `POST` or `PUT Type/id` (the path of a rest-hook PUT)
//!   2. the query string
//!   3. the token header's value
//!   4. the signature header's value

use trd_sentinel::config::Secret;
use trd_sentinel::http::NotifyAuth;
use trd_sentinel::intake::notification::reduce;

use super::{frame, relevance};

pub fn run(data: &[u8]) {
    let (lines, body) = frame(data, 4);
    let text = |i: usize| lines.get(i).copied().unwrap_or("");
    let path = text(0).strip_prefix("PUT ").and_then(|p| p.split_once('/'));
    let header = |i: usize| Some(text(i)).filter(|t| !t.is_empty());
    for auth in [
        NotifyAuth {
            token: Some(Secret::new("test-notify-token")),
            header: "authorization".into(),
            ..NotifyAuth::default()
        },
        NotifyAuth {
            hmac_secret: Some(Secret::new("test-hmac-secret")),
            hmac_header: "x-signature".into(),
            ..NotifyAuth::default()
        },
    ] {
        let _ = auth.accepts_parts(header(2), text(1), header(3), body);
    }
    let relevance = relevance();
    let _ = reduce(body, path, Some(&relevance));
    let _ = reduce(body, path, None);
}
