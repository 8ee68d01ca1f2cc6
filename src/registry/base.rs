//! `GET /v2/`: the API version check. Reaching a handler means auth already passed, so it answers 200 `{}`.

use super::common::json_ok;
use super::Reply;

/// The base check's reply: 200 with an empty JSON object.
pub fn get() -> Reply {
    json_ok(&serde_json::json!({}), Vec::new())
}
