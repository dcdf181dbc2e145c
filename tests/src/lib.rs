//! Support for Mailroom's end-to-end tests: real mail servers ([`servers`]) and a Mailroom
//! server with an API client ([`mailroom`]).

pub mod bench;
pub mod corpus;
pub mod examples;
pub mod fakes;
pub mod google;
pub mod imap;
pub mod load;
pub mod mailbox;
pub mod mailroom;
pub mod microsoft;
pub mod postgres;
pub mod process;
pub mod provider;
pub mod servers;
pub mod store;
pub mod webhooks;
