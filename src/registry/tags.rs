//! `GET /v2/<name>/tags/list`: the repository's tags, lexically sorted, paginated with `n`/`last` and `Link`.

use super::common::{json_ok, Page};
use super::Reply;
use crate::errcode::ApiError;
use crate::names::Name;
use crate::storage::Store;

/// Lists tags; an unknown repository is NAME_UNKNOWN.
pub async fn list(store: &Store, name: &Name, page: &Page) -> Result<Reply, ApiError> {
    let (tags, more) = page.apply(store.list_tags(name).await?);
    let mut headers = Vec::new();
    if let (true, Some(last)) = (more, tags.last()) {
        headers.push(page.next_link(&format!("/v2/{name}/tags/list"), last));
    }
    Ok(json_ok(
        &serde_json::json!({ "name": name.as_str(), "tags": tags }),
        headers,
    ))
}
