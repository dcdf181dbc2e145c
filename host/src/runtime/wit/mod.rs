//! The connector contract, one module per released version of the `mailroom:connector`
//! world: each holds its bindings, the conversions between its types and the host's, and the
//! host functions it introduced. The enums here dispatch over the versions, so the rest of
//! the runtime speaks only the host's terms. Adding a version is one module and one arm per
//! method (see `wit/README.md`).
//!
//! A later version reuses the interfaces it takes unchanged from an earlier one (`with` in
//! its bindings), so the host implements each interface once, in the version that
//! introduced it.

pub mod v0_1_0;
pub mod v0_2_0;
pub mod v0_3_0;
pub mod v0_4_0;
pub mod v0_5_0;
pub mod v0_6_0;
pub mod v0_7_0;
pub mod v0_8_0;

use super::sandbox::JobState;
use crate::account::ConnectionSpec;
use crate::connector::{AuthKind, ConnectorError, ErrorKind};
use crate::folder::Folder;
use crate::mail::work::{Work, WorkDone};
use crate::mail::{PageLimits, SyncPage, SyncStart};
use anyhow::bail;
use wasmtime::Store;
use wasmtime::component::{InstancePre, Linker};

/// The newest version the host speaks.
pub const NEWEST: &str = v0_8_0::VERSION;

/// Whether connectors of this world version may use outgoing HTTP (`wasi:http`).
pub fn speaks_http(version: &str) -> bool {
    semver::Version::parse(version).is_ok_and(|v| v >= semver::Version::new(0, 5, 0))
}

/// Whether connectors of this world version can watch folders (`watch` and `wait`).
pub fn watches(version: &str) -> bool {
    semver::Version::parse(version).is_ok_and(|v| v >= semver::Version::new(0, 8, 0))
}

/// Gives the linker every interface a connector of any version may import.
pub fn add_to_linker(linker: &mut Linker<JobState>) -> wasmtime::Result<()> {
    v0_1_0::add_to_linker(linker)?;
    v0_2_0::add_to_linker(linker)?;
    v0_4_0::add_to_linker(linker)?;
    v0_5_0::add_to_linker(linker)?;
    v0_7_0::add_to_linker(linker)?;
    v0_8_0::add_to_linker(linker)
}

/// What a connector says about itself, whatever its version.
pub struct Described {
    pub id: String,
    pub name: String,
    pub version: String,
    pub auth: AuthKind,
    pub servers: Vec<String>,
    pub hosts: Vec<String>,
    pub files_sent: bool,
    pub mailbox_wide_ids: bool,
}

/// A compiled connector, by the version of the world it was built for.
#[derive(Clone)]
pub enum Compiled {
    V0_1(v0_1_0::Pre),
    V0_2(v0_2_0::Pre),
    V0_3(v0_3_0::Pre),
    V0_4(v0_4_0::Pre),
    V0_5(v0_5_0::Pre),
    V0_6(v0_6_0::Pre),
    V0_7(v0_7_0::Pre),
    V0_8(v0_8_0::Pre),
}

/// A running instance of a connector.
pub enum Instance {
    V0_1(v0_1_0::MailConnector),
    V0_2(v0_2_0::MailConnector),
    V0_3(v0_3_0::MailConnector),
    V0_4(v0_4_0::MailConnector),
    V0_5(v0_5_0::MailConnector),
    V0_6(v0_6_0::MailConnector),
    V0_7(v0_7_0::MailConnector),
    V0_8(v0_8_0::MailConnector),
}

/// A session of a connector that can sync.
pub enum Session<'a> {
    V0_2(v0_2_0::Session<'a>),
    V0_3(v0_3_0::Session<'a>),
    V0_4(v0_4_0::Session<'a>),
    V0_5(v0_5_0::Session<'a>),
    V0_6(v0_6_0::Session<'a>),
    V0_7(v0_7_0::Session<'a>),
    V0_8(v0_8_0::Session<'a>),
}

/// What a session watches, and how (from 0.8.0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watching {
    pub folders: Vec<String>,
    pub method: String,
}

/// One page of a folder asked for.
pub struct FolderRequest {
    pub path: String,
    pub state: Option<Vec<u8>>,
    pub start: SyncStart,
    pub limits: PageLimits,
    /// The host wants the folder counted (from 0.6.0; earlier versions never count).
    pub count: bool,
}

/// What came of asking for a page.
pub enum Fetched {
    Page(SyncPage),
    /// The connector reported an error.
    Failed(ConnectorError),
    /// The host refused the page (over the limits it asked for, or past its caps).
    Refused(ConnectorError),
}

impl Compiled {
    /// The component compiled for the newest version it exports, and that version.
    pub fn new(pre: InstancePre<JobState>) -> anyhow::Result<(Self, &'static str)> {
        if let Ok(pre) = v0_8_0::Pre::new(pre.clone()) {
            return Ok((Self::V0_8(pre), v0_8_0::VERSION));
        }
        if let Ok(pre) = v0_7_0::Pre::new(pre.clone()) {
            return Ok((Self::V0_7(pre), v0_7_0::VERSION));
        }
        if let Ok(pre) = v0_6_0::Pre::new(pre.clone()) {
            return Ok((Self::V0_6(pre), v0_6_0::VERSION));
        }
        if let Ok(pre) = v0_5_0::Pre::new(pre.clone()) {
            return Ok((Self::V0_5(pre), v0_5_0::VERSION));
        }
        if let Ok(pre) = v0_4_0::Pre::new(pre.clone()) {
            return Ok((Self::V0_4(pre), v0_4_0::VERSION));
        }
        if let Ok(pre) = v0_3_0::Pre::new(pre.clone()) {
            return Ok((Self::V0_3(pre), v0_3_0::VERSION));
        }
        if let Ok(pre) = v0_2_0::Pre::new(pre.clone()) {
            return Ok((Self::V0_2(pre), v0_2_0::VERSION));
        }
        match v0_1_0::Pre::new(pre) {
            Ok(pre) => Ok((Self::V0_1(pre), v0_1_0::VERSION)),
            Err(e) => bail!(
                "the component does not export the connector interface of any world version this host speaks (up to mailroom:connector@{NEWEST}): {e}"
            ),
        }
    }

    pub async fn instantiate(&self, store: &mut Store<JobState>) -> wasmtime::Result<Instance> {
        Ok(match self {
            Self::V0_1(pre) => Instance::V0_1(pre.instantiate_async(store).await?),
            Self::V0_2(pre) => Instance::V0_2(pre.instantiate_async(store).await?),
            Self::V0_3(pre) => Instance::V0_3(pre.instantiate_async(store).await?),
            Self::V0_4(pre) => Instance::V0_4(pre.instantiate_async(store).await?),
            Self::V0_5(pre) => Instance::V0_5(pre.instantiate_async(store).await?),
            Self::V0_6(pre) => Instance::V0_6(pre.instantiate_async(store).await?),
            Self::V0_7(pre) => Instance::V0_7(pre.instantiate_async(store).await?),
            Self::V0_8(pre) => Instance::V0_8(pre.instantiate_async(store).await?),
        })
    }
}

impl Instance {
    pub async fn describe(&self, store: &mut Store<JobState>) -> wasmtime::Result<Described> {
        match self {
            Self::V0_1(instance) => v0_1_0::describe(instance, store).await,
            Self::V0_2(instance) => v0_2_0::describe(instance, store).await,
            Self::V0_3(instance) => v0_3_0::describe(instance, store).await,
            Self::V0_4(instance) => v0_4_0::describe(instance, store).await,
            Self::V0_5(instance) => v0_5_0::describe(instance, store).await,
            Self::V0_6(instance) => v0_6_0::describe(instance, store).await,
            Self::V0_7(instance) => v0_7_0::describe(instance, store).await,
            Self::V0_8(instance) => v0_8_0::describe(instance, store).await,
        }
    }

    /// Connects to every server of the account and lists its folders.
    pub async fn test(
        &self,
        store: &mut Store<JobState>,
        spec: &ConnectionSpec,
    ) -> wasmtime::Result<Result<Vec<Folder>, ConnectorError>> {
        match self {
            Self::V0_1(instance) => v0_1_0::test(instance, store, spec).await,
            Self::V0_2(instance) => v0_2_0::test(instance, store, spec).await,
            Self::V0_3(instance) => v0_3_0::test(instance, store, spec).await,
            Self::V0_4(instance) => v0_4_0::test(instance, store, spec).await,
            Self::V0_5(instance) => v0_5_0::test(instance, store, spec).await,
            Self::V0_6(instance) => v0_6_0::test(instance, store, spec).await,
            Self::V0_7(instance) => v0_7_0::test(instance, store, spec).await,
            Self::V0_8(instance) => v0_8_0::test(instance, store, spec).await,
        }
    }

    /// Opens a session that can sync, or says why this connector's version cannot.
    pub async fn session(
        &self,
        store: &mut Store<JobState>,
        spec: &ConnectionSpec,
    ) -> wasmtime::Result<Result<Session<'_>, ConnectorError>> {
        Ok(Ok(match self {
            Self::V0_1(_) => {
                return Ok(Err(ConnectorError::new(
                    ErrorKind::Unsupported,
                    "this connector was built for mailroom:connector@0.1.0, which cannot sync",
                )));
            }
            Self::V0_2(instance) => {
                Session::V0_2(v0_2_0::Session::open(instance, store, spec).await?)
            }
            Self::V0_3(instance) => {
                Session::V0_3(v0_3_0::Session::open(instance, store, spec).await?)
            }
            Self::V0_4(instance) => {
                Session::V0_4(v0_4_0::Session::open(instance, store, spec).await?)
            }
            Self::V0_5(instance) => {
                Session::V0_5(v0_5_0::Session::open(instance, store, spec).await?)
            }
            Self::V0_6(instance) => {
                Session::V0_6(v0_6_0::Session::open(instance, store, spec).await?)
            }
            Self::V0_7(instance) => {
                Session::V0_7(v0_7_0::Session::open(instance, store, spec).await?)
            }
            Self::V0_8(instance) => {
                Session::V0_8(v0_8_0::Session::open(instance, store, spec).await?)
            }
        }))
    }
}

impl Session<'_> {
    pub async fn list_folders(
        &self,
        store: &mut Store<JobState>,
    ) -> wasmtime::Result<Result<Vec<Folder>, ConnectorError>> {
        match self {
            Self::V0_2(session) => session.list_folders(store).await,
            Self::V0_3(session) => session.list_folders(store).await,
            Self::V0_4(session) => session.list_folders(store).await,
            Self::V0_5(session) => session.list_folders(store).await,
            Self::V0_6(session) => session.list_folders(store).await,
            Self::V0_7(session) => session.list_folders(store).await,
            Self::V0_8(session) => session.list_folders(store).await,
        }
    }

    pub async fn sync_folder(
        &self,
        store: &mut Store<JobState>,
        request: &FolderRequest,
    ) -> wasmtime::Result<Fetched> {
        match self {
            Self::V0_2(session) => session.sync_folder(store, request).await,
            Self::V0_3(session) => session.sync_folder(store, request).await,
            Self::V0_4(session) => session.sync_folder(store, request).await,
            Self::V0_5(session) => session.sync_folder(store, request).await,
            Self::V0_6(session) => session.sync_folder(store, request).await,
            Self::V0_7(session) => session.sync_folder(store, request).await,
            Self::V0_8(session) => session.sync_folder(store, request).await,
        }
    }

    /// Does one piece of outbox work.
    pub async fn work(
        &self,
        store: &mut Store<JobState>,
        work: Work,
    ) -> wasmtime::Result<Result<WorkDone, ConnectorError>> {
        match self {
            Self::V0_2(_) => Ok(Err(ConnectorError::new(
                ErrorKind::Unsupported,
                "this connector was built for mailroom:connector@0.2.0, which cannot change mail on the server or send",
            ))),
            Self::V0_3(session) => session.work(store, work).await,
            Self::V0_4(session) => session.work(store, work).await,
            Self::V0_5(session) => session.work(store, work).await,
            Self::V0_6(session) => session.work(store, work).await,
            Self::V0_7(session) => session.work(store, work).await,
            Self::V0_8(session) => session.work(store, work).await,
        }
    }

    /// Starts watching `folders`; a connector before 0.8.0 cannot.
    pub async fn watch(
        &self,
        store: &mut Store<JobState>,
        folders: &[String],
    ) -> wasmtime::Result<Result<Watching, ConnectorError>> {
        match self {
            Self::V0_8(session) => session.watch(store, folders).await,
            _ => Ok(Err(ConnectorError::new(
                ErrorKind::Unsupported,
                "the connector was built before mailroom:connector@0.8.0, which cannot watch folders",
            ))),
        }
    }

    /// Waits at most `timeout` for news of the watched folders; those that changed.
    pub async fn wait(
        &self,
        store: &mut Store<JobState>,
        timeout: std::time::Duration,
    ) -> wasmtime::Result<Result<Vec<String>, ConnectorError>> {
        match self {
            Self::V0_8(session) => session.wait(store, timeout).await,
            _ => Ok(Err(ConnectorError::new(
                ErrorKind::Unsupported,
                "the connector was built before mailroom:connector@0.8.0, which cannot watch folders",
            ))),
        }
    }

    pub async fn close(self, store: &mut Store<JobState>) -> wasmtime::Result<()> {
        match self {
            Self::V0_2(session) => session.close(store).await,
            Self::V0_3(session) => session.close(store).await,
            Self::V0_4(session) => session.close(store).await,
            Self::V0_5(session) => session.close(store).await,
            Self::V0_6(session) => session.close(store).await,
            Self::V0_7(session) => session.close(store).await,
            Self::V0_8(session) => session.close(store).await,
        }
    }
}

/// The calls every version makes the same way: `describe`, a connection test, and a
/// session's folder listing, paging and closing. Expanded in each version module, whose
/// instance exports its `connector` interface through `$export`.
macro_rules! common_calls {
    ($export:ident) => {
        super::common_calls!(@describe $export);
        super::common_calls!(@test $export);
    };
    (@describe $export:ident) => {
        pub async fn describe(
            instance: &MailConnector,
            store: &mut wasmtime::Store<crate::runtime::sandbox::JobState>,
        ) -> wasmtime::Result<super::Described> {
            let info = instance.$export().call_describe(store).await?;
            Ok(super::Described {
                id: info.id,
                name: info.name,
                version: info.version,
                auth: match info.auth {
                    exported::AuthKind::Password => crate::connector::AuthKind::Password,
                    exported::AuthKind::Oauth2 => crate::connector::AuthKind::Oauth2,
                },
                servers: info.servers,
                hosts: Vec::new(),
                files_sent: false,
                mailbox_wide_ids: false,
            })
        }
    };
    // From 0.5.0 on, `describe` says all the host keeps.
    (@describe_all $export:ident) => {
        pub async fn describe(
            instance: &MailConnector,
            store: &mut wasmtime::Store<crate::runtime::sandbox::JobState>,
        ) -> wasmtime::Result<super::Described> {
            let info = instance.$export().call_describe(store).await?;
            Ok(super::Described {
                id: info.id,
                name: info.name,
                version: info.version,
                auth: match info.auth {
                    exported::AuthKind::Password => crate::connector::AuthKind::Password,
                    exported::AuthKind::Oauth2 => crate::connector::AuthKind::Oauth2,
                },
                servers: info.servers,
                hosts: info.hosts,
                files_sent: info.files_sent,
                mailbox_wide_ids: info.mailbox_wide_ids,
            })
        }
    };
    (@test $export:ident) => {

        pub async fn test(
            instance: &MailConnector,
            store: &mut wasmtime::Store<crate::runtime::sandbox::JobState>,
            spec: &crate::account::ConnectionSpec,
        ) -> wasmtime::Result<Result<Vec<crate::folder::Folder>, crate::connector::ConnectorError>>
        {
            let sessions = instance.$export().session();
            let account = super::v0_1_0::account_record(spec);
            let session = sessions.call_constructor(&mut *store, &account).await?;
            let result = match sessions.call_check(&mut *store, session).await? {
                Ok(()) => sessions
                    .call_list_folders(&mut *store, session)
                    .await?
                    .map_err(crate::connector::ConnectorError::from)
                    .and_then(|listed| super::v0_1_0::folders_from_wit(listed, &store.data().caps)),
                Err(error) => Err(error.into()),
            };
            session.resource_drop_async(&mut *store).await?;
            Ok(result)
        }
    };
}

/// A syncing session's calls that read the same in every version from 0.2.0 on; `$request`
/// turns a [`FolderRequest`] into the version's own (0.2.0's until 0.6.0).
macro_rules! session_calls {
    ($export:ident) => {
        super::session_calls!($export, super::v0_2_0::request_to_wit);
    };
    ($export:ident, $request:path) => {
        /// A session of this version's connector.
        pub struct Session<'a> {
            sessions: exported::GuestSession<'a>,
            session: wasmtime::component::ResourceAny,
        }

        impl<'a> Session<'a> {
            pub async fn open(
                instance: &'a MailConnector,
                store: &mut wasmtime::Store<crate::runtime::sandbox::JobState>,
                spec: &crate::account::ConnectionSpec,
            ) -> wasmtime::Result<Self> {
                let sessions = instance.$export().session();
                let account = super::v0_1_0::account_record(spec);
                let session = sessions.call_constructor(&mut *store, &account).await?;
                Ok(Self { sessions, session })
            }

            pub async fn list_folders(
                &self,
                store: &mut wasmtime::Store<crate::runtime::sandbox::JobState>,
            ) -> wasmtime::Result<
                Result<Vec<crate::folder::Folder>, crate::connector::ConnectorError>,
            > {
                let listed = self
                    .sessions
                    .call_list_folders(&mut *store, self.session)
                    .await?;
                Ok(listed
                    .map_err(crate::connector::ConnectorError::from)
                    .and_then(|folders| {
                        super::v0_1_0::folders_from_wit(folders, &store.data().caps)
                    }))
            }

            pub async fn sync_folder(
                &self,
                store: &mut wasmtime::Store<crate::runtime::sandbox::JobState>,
                request: &super::FolderRequest,
            ) -> wasmtime::Result<super::Fetched> {
                let wit_request = $request(request);
                match self
                    .sessions
                    .call_sync_folder(&mut *store, self.session, &wit_request)
                    .await?
                {
                    Ok(page) => page_from_wit(store, page, request.limits),
                    Err(error) => Ok(super::Fetched::Failed(error.into())),
                }
            }

            pub async fn close(
                self,
                store: &mut wasmtime::Store<crate::runtime::sandbox::JobState>,
            ) -> wasmtime::Result<()> {
                self.session.resource_drop_async(&mut *store).await
            }
        }
    };
}

/// A session's outbox work (`apply`, `append`, `send`), the same in every version from 0.3.0
/// on, whose `changes` types later versions take unchanged.
macro_rules! work_calls {
    () => {
        impl Session<'_> {
            /// Does one piece of outbox work.
            pub async fn work(
                &self,
                store: &mut wasmtime::Store<crate::runtime::sandbox::JobState>,
                work: crate::mail::work::Work,
            ) -> wasmtime::Result<
                Result<crate::mail::work::WorkDone, crate::connector::ConnectorError>,
            > {
                use super::v0_3_0::changes;
                let (sessions, session) = (&self.sessions, self.session);
                let max_reply = store.data().caps.max_reply_bytes;
                let reply = |r: changes::Reply| super::v0_3_0::reply(r, max_reply);
                let done = match work {
                    crate::mail::work::Work::Apply {
                        folder,
                        provider_id,
                        change,
                    } => {
                        let target = changes::Target {
                            folder,
                            id: provider_id,
                        };
                        let change = match change {
                            crate::mail::work::WorkChange::Flags(update) => {
                                changes::Change::SetFlags(changes::FlagUpdate {
                                    seen: update.seen,
                                    flagged: update.flagged,
                                    answered: update.answered,
                                })
                            }
                            crate::mail::work::WorkChange::MoveTo(path) => {
                                changes::Change::MoveTo(path)
                            }
                            crate::mail::work::WorkChange::Expunge => changes::Change::Expunge,
                        };
                        sessions
                            .call_apply(store, session, &target, &change)
                            .await?
                            .map(|applied| match applied {
                                changes::Applied::Done(id) => {
                                    crate::mail::work::WorkDone::Applied(id)
                                }
                                changes::Applied::Gone => crate::mail::work::WorkDone::Gone,
                            })
                    }
                    crate::mail::work::Work::Append { folder, raw, flags } => sessions
                        .call_append(
                            store,
                            session,
                            &folder,
                            &raw,
                            super::v0_2_0::flags_to_wit(flags),
                        )
                        .await?
                        .map(crate::mail::work::WorkDone::Appended),
                    crate::mail::work::Work::Send {
                        from,
                        recipients,
                        raw,
                    } => {
                        let envelope = changes::Envelope { from, recipients };
                        sessions
                            .call_send(store, session, &envelope, &raw)
                            .await?
                            .map(|delivery| {
                                crate::mail::work::WorkDone::Delivered(
                                    crate::mail::work::Delivery {
                                        recipients: delivery
                                            .recipients
                                            .into_iter()
                                            .map(|r| (r.address, reply(r.reply)))
                                            .collect(),
                                        refused: delivery.refused.map(reply),
                                        data: delivery.data.map(reply),
                                    },
                                )
                            })
                    }
                };
                Ok(done.map_err(crate::connector::ConnectorError::from))
            }
        }
    };
}

use {common_calls, session_calls, work_calls};
