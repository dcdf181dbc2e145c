//! `GET /v1/connectors`.

use super::error::ApiError;
use super::paging::PageRequest;
use super::{App, json};
use std::collections::HashMap;
use warp::reply::Response;

pub async fn list(app: &App, query: &HashMap<String, String>) -> Result<Response, ApiError> {
    let page = PageRequest::from_query(query)?;
    let connectors = app.runtime.connectors();
    Ok(json(&page.page(connectors, |c| c.id.clone())))
}
