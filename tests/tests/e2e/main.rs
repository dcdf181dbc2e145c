//! Mailroom's end-to-end tests: a real server process against real Dovecot and SMTP
//! servers, driven through the HTTP API. One test binary for all of them, so the host and
//! its dependencies are linked once.

mod accounts;
mod api;
mod cluster;
mod completeness;
mod connection;
mod connectors;
mod crash;
mod google;
mod health;
mod http;
mod messages;
mod metrics;
mod microsoft;
mod outbox;
mod push;
mod records;
mod sandbox;
mod security;
mod sync;
mod users;
mod webhooks;
