//! Who is calling: a bearer token, looked up by its SHA-256 hash, and for service tokens the
//! user named in `X-Mailroom-User`, whose permissions the service then has.

use super::error::ApiError;
use crate::store::Store;
use crate::user::{Token, TokenHash, TokenOwner, User};
use warp::http::StatusCode;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token: TokenHash,
    /// The user whose permissions apply: the token's owner, or the user a service acts as.
    pub user: Option<User>,
    /// The service, when the token is a service's.
    pub service: Option<String>,
}

impl Caller {
    /// The user the request acts as; a service must name one.
    pub fn user(&self) -> Result<&User, ApiError> {
        self.user.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "a service must act as a user (X-Mailroom-User) for this request",
            )
        })
    }

    pub fn admin(&self) -> Result<&User, ApiError> {
        let user = self.user()?;
        if user.is_admin() {
            Ok(user)
        } else {
            Err(ApiError::forbidden("only an admin may do this"))
        }
    }

    /// An admin, or the CRM's service itself (a service acting as a user has that user's
    /// permissions); `what` names what the others may not do.
    pub fn admin_or_service(&self, what: &str) -> Result<(), ApiError> {
        let allowed = match &self.user {
            Some(user) => user.is_admin(),
            None => self.service.is_some(),
        };
        if allowed {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "{what} an admin or the CRM's service"
            )))
        }
    }

    /// Identifies the caller for idempotency keys and limits.
    pub fn key(&self) -> String {
        match (&self.user, &self.service) {
            (Some(user), Some(service)) => format!("{service}/{}", user.id),
            (Some(user), None) => user.id.clone(),
            (None, Some(service)) => service.clone(),
            (None, None) => hex::encode(self.token.as_bytes()),
        }
    }
}

pub async fn authenticate(
    store: &dyn Store,
    authorization: Option<&str>,
    act_as: Option<&str>,
) -> Result<Caller, ApiError> {
    let token = authorization
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(ApiError::unauthorized)?;
    let hash = TokenHash::of(token);
    let stored = store
        .token(&hash)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    note_use(store, hash, &stored).await?;
    // A disabled user is refused, whoever presents them: their own token (revoked when they
    // were disabled) or a service acting as them.
    let enabled = |user: User| (!user.disabled).then_some(user);
    match stored.owner {
        TokenOwner::User(id) => {
            if act_as.is_some() {
                return Err(ApiError::forbidden(
                    "only a service token may act as another user",
                ));
            }
            let user = store
                .user(&id)
                .await?
                .and_then(enabled)
                .ok_or_else(ApiError::unauthorized)?;
            Ok(Caller {
                token: hash,
                user: Some(user),
                service: None,
            })
        }
        TokenOwner::Service(name) => {
            let user = match act_as {
                None => None,
                Some(id) => {
                    let user = store.user(id.trim()).await?.ok_or_else(|| {
                        ApiError::forbidden("X-Mailroom-User names no user of this server")
                    })?;
                    Some(enabled(user).ok_or_else(ApiError::unauthorized)?)
                }
            };
            Ok(Caller {
                token: hash,
                user,
                service: Some(name),
            })
        }
    }
}

/// Records when a token was last used, to the minute: one write a minute per token at most.
async fn note_use(store: &dyn Store, hash: TokenHash, token: &Token) -> Result<(), ApiError> {
    let now = time::OffsetDateTime::now_utc();
    let recent = token
        .last_used_at
        .as_deref()
        .and_then(|at| {
            time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()
        })
        .is_some_and(|at| now - at < time::Duration::minutes(1));
    if !recent {
        store.token_used(&hash, crate::clock::rfc3339(now)).await?;
    }
    Ok(())
}
