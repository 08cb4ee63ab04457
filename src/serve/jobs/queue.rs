//! The job records in the store, their transitions (queued, running, finished, cancelled),
//! the one worker thread that runs them, and what a restart finds.

use std::collections::HashMap;
use std::path::Path as FilePath;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};

use aquatwin::auth::http::ApiError;
use axum::http::StatusCode;
use scenarios::criticality::{sweep_until, PeriodStart};
use serde::{Deserialize, Serialize};
use twin::store::tuple::Element;
use twin::store::{Durability, Order, TenantKeys, WriteBatch};
use twin::StoreError;
use utoipa::ToSchema;

use super::spec::{prepare, JobError, JobKind, JobRequest, Prepared, SCENARIO_FILE};
use crate::planning::risk::rank;
use crate::planning::scenario::run_scenario;
use crate::serve::networks::Versions;

/// Record families: job descriptions, the requests as sent, results; each by job id.
const JOBS: &str = "jobs";
const JOB_REQUESTS: &str = "job_requests";
pub(super) const JOB_RESULTS: &str = "job_results";

/// Finished jobs kept per municipality; older ones are deleted.
const KEPT_FINISHED: usize = 50;

/// The error of a job that was running when the server stopped.
const INTERRUPTED: &str = "interrupted by a restart";

/// Scheduling priority of the worker thread (and the simulation threads it starts).
const WORKER_NICE: i32 = 10;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum Status {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl Status {
    fn finished(self) -> bool {
        matches!(self, Status::Done | Status::Failed | Status::Cancelled)
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }
}

/// A job, as stored and shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(super) struct JobRecord {
    pub(super) id: u64,
    municipality: String,
    pub(super) kind: JobKind,
    /// The network version it runs on (0: the live twin's configured network).
    network_version: u64,
    pub(super) status: Status,
    /// 0 to 1.
    progress: f64,
    /// Set once a cancel was asked for while it runs.
    cancel_requested: bool,
    submitted_by: String,
    /// Unix ms.
    submitted_at_ms: i64,
    started_at_ms: Option<i64>,
    finished_at_ms: Option<i64>,
    /// Why it failed.
    pub(super) error: Option<String>,
}

/// How a run ended.
enum Outcome {
    Done(Vec<u8>),
    Failed(String),
    Cancelled,
}

/// Runs a prepared job, reporting the fraction done to `progress`; stops early once `stop`
/// is set.
fn execute(prepared: Prepared, progress: &Progress) -> Outcome {
    let json = |value: Result<Vec<u8>, serde_json::Error>| match value {
        Ok(bytes) => Outcome::Done(bytes),
        Err(err) => Outcome::Failed(format!("cannot encode the result: {err}")),
    };
    match prepared {
        Prepared::Scenario { network, scenario } => {
            match run_scenario(&network, &scenario, FilePath::new(SCENARIO_FILE)) {
                Ok(run) => json(serde_json::to_vec_pretty(&run.impact)),
                Err(err) => Outcome::Failed(format!("{err:#}")),
            }
        }
        Prepared::Criticality {
            network,
            elements,
            settings,
            segments,
        } => {
            let total = elements.len();
            let report = sweep_until(
                &network,
                &elements,
                &settings,
                segments.as_ref(),
                &|done| progress.set(done, total),
                &progress.stop,
                PeriodStart::Warm,
            );
            match report {
                Ok(Some(report)) => json(serde_json::to_vec_pretty(&report)),
                Ok(None) => Outcome::Cancelled,
                Err(err) => Outcome::Failed(err.to_string()),
            }
        }
        Prepared::Risk {
            network,
            job,
            likelihood,
        } => {
            let total = likelihood.len();
            let ranked = rank(
                &network,
                &job.inputs(),
                likelihood,
                &|done| progress.set(done, total),
                &progress.stop,
            );
            match ranked {
                Ok(Some(rows)) => json(serde_json::to_vec_pretty(&rows)),
                Ok(None) => Outcome::Cancelled,
                Err(err) => Outcome::Failed(format!("{err:#}")),
            }
        }
    }
}

/// A running job's progress and its stop flag.
#[derive(Default)]
struct Progress {
    /// The fraction done, as `f64` bits.
    fraction: AtomicU64,
    stop: AtomicBool,
}

impl Progress {
    fn set(&self, done: usize, total: usize) {
        let fraction = done as f64 / total.max(1) as f64;
        self.fraction
            .store(fraction.min(1.0).to_bits(), Ordering::Relaxed);
    }

    fn fraction(&self) -> f64 {
        f64::from_bits(self.fraction.load(Ordering::Relaxed))
    }
}

/// A job: its municipality and id.
type JobKey = (String, u64);

/// What became of a network version asked to be deleted.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::serve) enum NetworkDeletion {
    Deleted,
    /// No such version.
    Unknown,
    /// A queued or running job runs on it.
    InUse {
        job: u64,
        status: &'static str,
    },
}

/// What the routes and the worker share.
pub(super) struct Shared {
    pub(super) store: Arc<dyn twin::Store>,
    pub(super) versions: Arc<Versions>,
    /// Held while a job's record is read and rewritten, so that the worker and the routes never
    /// overwrite each other's changes (and while an id is taken).
    transitions: Mutex<()>,
    /// The running job's progress.
    running: Mutex<HashMap<JobKey, Arc<Progress>>>,
}

pub(super) fn key(municipality: &str, family: &str, id: u64) -> Vec<u8> {
    TenantKeys::new(municipality).key(&[
        Element::from(family),
        Element::Int(i64::try_from(id).unwrap_or(i64::MAX)),
    ])
}

fn encode(record: &JobRecord) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record).map_err(|err| StoreError::backend("encode job", err))
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.transitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<JobKey, Arc<Progress>>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn record(
        &self,
        municipality: &str,
        id: u64,
    ) -> Result<Option<JobRecord>, StoreError> {
        let Some(bytes) = self.store.get(&key(municipality, JOBS, id))? else {
            return Ok(None);
        };
        let record =
            serde_json::from_slice(&bytes).map_err(|err| StoreError::backend("decode job", err))?;
        Ok(Some(self.with_progress(record)))
    }

    /// `record` with the live progress of a running job.
    fn with_progress(&self, mut record: JobRecord) -> JobRecord {
        if record.status == Status::Running {
            if let Some(progress) = self
                .running()
                .get(&(record.municipality.clone(), record.id))
            {
                record.progress = progress.fraction();
                record.cancel_requested = progress.stop.load(Ordering::Relaxed);
            }
        }
        record
    }

    /// Every job of `municipality`, in `order` of id.
    pub(super) fn records(
        &self,
        municipality: &str,
        order: Order,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let range = TenantKeys::new(municipality)
            .space()
            .subspace(&[Element::from(JOBS)])
            .range();
        self.store
            .scan(&range, order, None)?
            .into_iter()
            .map(|(_, bytes)| {
                serde_json::from_slice(&bytes)
                    .map(|record| self.with_progress(record))
                    .map_err(|err| StoreError::backend("decode job", err))
            })
            .collect()
    }

    fn put(&self, record: &JobRecord) -> Result<(), StoreError> {
        self.store.put(
            &key(&record.municipality, JOBS, record.id),
            &encode(record)?,
        )
    }

    /// Stores a new queued job of `request` (already checked) and drops the oldest finished
    /// jobs past [`KEPT_FINISHED`]. Its network version must still exist: checked under the
    /// lock [`Shared::delete_network`] holds, so a version is never deleted under a new job.
    pub(super) fn submit(
        &self,
        municipality: &str,
        by: &str,
        kind: JobKind,
        network_version: u64,
        request: &[u8],
    ) -> Result<JobRecord, JobError> {
        let _held = self.lock();
        if network_version != 0 && !self.versions.uploaded(municipality, network_version)? {
            return Err(JobError::Invalid(format!(
                "network: no network version {network_version} (deleted)"
            )));
        }
        let newest = self.records(municipality, Order::Reverse)?;
        let record = JobRecord {
            id: newest.first().map_or(1, |last| last.id + 1),
            municipality: municipality.to_string(),
            kind,
            network_version,
            status: Status::Queued,
            progress: 0.0,
            cancel_requested: false,
            submitted_by: by.to_string(),
            submitted_at_ms: crate::fleet::unix_ms(),
            started_at_ms: None,
            finished_at_ms: None,
            error: None,
        };
        let mut batch = WriteBatch::new();
        batch.put(key(municipality, JOBS, record.id), encode(&record)?);
        batch.put(key(municipality, JOB_REQUESTS, record.id), request);
        let finished = newest.iter().filter(|job| job.status.finished());
        for old in finished.skip(KEPT_FINISHED) {
            for family in [JOBS, JOB_REQUESTS, JOB_RESULTS] {
                batch.delete(key(municipality, family, old.id));
            }
        }
        self.store.write(batch, Durability::Durable)?;
        Ok(record)
    }

    /// Marks a queued job running; `None` when it is no longer queued (cancelled).
    fn start(&self, job: &JobKey) -> Result<Option<(JobRecord, Arc<Progress>)>, StoreError> {
        let _held = self.lock();
        let Some(mut record) = self.record(&job.0, job.1)? else {
            return Ok(None);
        };
        if record.status != Status::Queued {
            return Ok(None);
        }
        record.status = Status::Running;
        record.started_at_ms = Some(crate::fleet::unix_ms());
        self.put(&record)?;
        let progress = Arc::new(Progress::default());
        self.running().insert(job.clone(), progress.clone());
        Ok(Some((record, progress)))
    }

    /// Records how the running job `record` ended.
    fn finish(&self, mut record: JobRecord, outcome: Outcome) -> Result<(), StoreError> {
        let _held = self.lock();
        let job = (record.municipality.clone(), record.id);
        if let Some(progress) = self.running().get(&job) {
            record.progress = progress.fraction();
            record.cancel_requested = progress.stop.load(Ordering::Relaxed);
        }
        record.finished_at_ms = Some(crate::fleet::unix_ms());
        let mut batch = WriteBatch::new();
        match outcome {
            Outcome::Done(result) => {
                record.status = Status::Done;
                record.progress = 1.0;
                batch.put(key(&job.0, JOB_RESULTS, job.1), result);
            }
            Outcome::Failed(error) => {
                record.status = Status::Failed;
                record.error = Some(error);
            }
            Outcome::Cancelled => record.status = Status::Cancelled,
        }
        batch.put(key(&job.0, JOBS, job.1), encode(&record)?);
        let written = self.store.write(batch, Durability::Durable);
        // Only now: until the finished record is stored, readers see the running one with
        // this progress.
        self.running().remove(&job);
        written
    }

    /// Runs one queued job to its end.
    fn run(&self, job: &JobKey) -> Result<(), StoreError> {
        let Some((record, progress)) = self.start(job)? else {
            return Ok(());
        };
        let outcome = match self.store.get(&key(&job.0, JOB_REQUESTS, job.1))? {
            None => Outcome::Failed("the job's request is missing".into()),
            Some(body) => match JobRequest::parse(&body)
                .and_then(|request| prepare(&self.versions, &job.0, request))
            {
                Ok((_, prepared)) => execute(prepared, &progress),
                Err(err) => Outcome::Failed(err.to_string()),
            },
        };
        self.finish(record, outcome)
    }

    /// Deletes network `version` of `municipality` unless a queued or running job uses it.
    fn delete_network(
        &self,
        municipality: &str,
        version: u64,
    ) -> Result<NetworkDeletion, StoreError> {
        let _held = self.lock();
        let user = self
            .records(municipality, Order::Forward)?
            .into_iter()
            .find(|job| job.network_version == version && !job.status.finished());
        if let Some(job) = user {
            return Ok(NetworkDeletion::InUse {
                job: job.id,
                status: job.status.name(),
            });
        }
        Ok(if self.versions.delete(municipality, version)? {
            NetworkDeletion::Deleted
        } else {
            NetworkDeletion::Unknown
        })
    }

    /// Cancels a job: at once when queued, at its next step when running; `None` when there
    /// is no such job.
    pub(super) fn cancel(
        &self,
        municipality: &str,
        id: u64,
    ) -> Result<Option<(JobRecord, StatusCode)>, StoreError> {
        let _held = self.lock();
        let Some(mut record) = self.record(municipality, id)? else {
            return Ok(None);
        };
        let answer = match record.status {
            Status::Queued => {
                record.status = Status::Cancelled;
                record.finished_at_ms = Some(crate::fleet::unix_ms());
                self.put(&record)?;
                StatusCode::OK
            }
            Status::Running => {
                if let Some(progress) = self.running().get(&(municipality.to_string(), id)) {
                    progress.stop.store(true, Ordering::Relaxed);
                    record.cancel_requested = true;
                }
                StatusCode::ACCEPTED
            }
            Status::Done | Status::Failed | Status::Cancelled => StatusCode::CONFLICT,
        };
        Ok(Some((record, answer)))
    }

    /// After a restart: running jobs failed, queued ones to run again (in submission order).
    fn recover(&self, municipalities: &[String]) -> Result<Vec<JobKey>, StoreError> {
        let mut queued = Vec::new();
        for municipality in municipalities {
            for mut record in self.records(municipality, Order::Forward)? {
                match record.status {
                    Status::Running => {
                        record.status = Status::Failed;
                        record.error = Some(INTERRUPTED.to_string());
                        record.finished_at_ms = Some(crate::fleet::unix_ms());
                        self.put(&record)?;
                    }
                    Status::Queued => {
                        queued.push((record.submitted_at_ms, record.id, municipality))
                    }
                    Status::Done | Status::Failed | Status::Cancelled => {}
                }
            }
        }
        queued.sort();
        Ok(queued
            .into_iter()
            .map(|(_, id, municipality)| (municipality.clone(), id))
            .collect())
    }
}

/// The planning jobs of every municipality and their worker.
pub(in crate::serve) struct Jobs {
    pub(super) shared: Arc<Shared>,
    /// To the worker thread; it ends once this is dropped and its current job is done.
    queue: mpsc::Sender<JobKey>,
}

impl Jobs {
    /// Recovers the jobs of `municipalities` in `store` (see the module documentation) and
    /// starts the worker.
    pub(in crate::serve) fn start(
        store: Arc<dyn twin::Store>,
        versions: Arc<Versions>,
        municipalities: &[String],
    ) -> Result<Self, StoreError> {
        let shared = Arc::new(Shared {
            store,
            versions,
            transitions: Mutex::new(()),
            running: Mutex::new(HashMap::new()),
        });
        let (queue, jobs) = mpsc::channel::<JobKey>();
        for job in shared.recover(municipalities)? {
            // The receiver is alive: it is still in this function.
            let _ = queue.send(job);
        }
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("planning-jobs".into())
            .spawn(move || {
                lower_priority();
                for job in jobs {
                    if let Err(err) = worker.run(&job) {
                        tracing::error!("planning job {} of {}: {err}", job.1, job.0);
                    }
                }
            })
            .map_err(|err| StoreError::backend("start the planning worker", err))?;
        Ok(Self { shared, queue })
    }

    /// Deletes network `version` of `municipality` unless a queued or running job uses it.
    pub(in crate::serve) fn delete_network(
        &self,
        municipality: &str,
        version: u64,
    ) -> Result<NetworkDeletion, StoreError> {
        self.shared.delete_network(municipality, version)
    }

    pub(super) fn enqueue(&self, job: JobKey) -> Result<(), ApiError> {
        self.queue
            .send(job)
            .map_err(|_| ApiError::internal("the planning worker has stopped"))
    }
}

/// Lowers the calling thread's scheduling priority; threads it starts inherit it.
#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
    let outcome = unsafe {
        let thread = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, thread, WORKER_NICE)
    };
    if outcome != 0 {
        tracing::warn!(
            "cannot lower the planning worker's priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        let store: Arc<dyn twin::Store> = Arc::new(twin::store::MemoryStore::new());
        Shared {
            versions: Arc::new(Versions::new(store.clone(), &HashMap::new())),
            store,
            transitions: Mutex::new(()),
            running: Mutex::new(HashMap::new()),
        }
    }

    fn submit(shared: &Shared, municipality: &str) -> JobRecord {
        shared
            .submit(municipality, "ann", JobKind::Scenario, 0, b"{}")
            .unwrap()
    }

    #[test]
    fn only_the_latest_finished_jobs_are_kept() {
        let shared = shared();
        for _ in 0..KEPT_FINISHED + 2 {
            let mut record = submit(&shared, "north");
            record.status = Status::Done;
            shared.put(&record).unwrap();
            shared
                .store
                .put(&key("north", JOB_RESULTS, record.id), b"{}")
                .unwrap();
        }
        let other = submit(&shared, "south");
        let newest = submit(&shared, "north");
        assert_eq!(newest.id, KEPT_FINISHED as u64 + 3);
        let kept: Vec<u64> = shared
            .records("north", Order::Forward)
            .unwrap()
            .iter()
            .map(|job| job.id)
            .collect();
        let expected: Vec<u64> = (3..=newest.id).collect();
        assert_eq!(kept, expected);
        for dropped in [1, 2] {
            for family in [JOBS, JOB_REQUESTS, JOB_RESULTS] {
                let stored = shared.store.get(&key("north", family, dropped)).unwrap();
                assert!(stored.is_none(), "{family} {dropped}");
            }
        }
        assert!(shared
            .store
            .get(&key("north", JOB_RESULTS, 3))
            .unwrap()
            .is_some());
        assert_eq!(
            shared.records("south", Order::Forward).unwrap()[0].id,
            other.id
        );
    }

    #[test]
    fn a_restart_fails_the_running_job_and_queues_the_queued_ones_in_order() {
        let shared = shared();
        let running = submit(&shared, "north");
        let south = submit(&shared, "south");
        let queued = submit(&shared, "north");
        let started = shared
            .start(&("north".to_string(), running.id))
            .unwrap()
            .unwrap();
        assert_eq!(started.0.status, Status::Running);
        let municipalities = ["north".to_string(), "south".to_string()];
        let again = shared.recover(&municipalities).unwrap();
        assert_eq!(
            again,
            [
                ("south".to_string(), south.id),
                ("north".to_string(), queued.id)
            ]
        );
        let failed = shared.record("north", running.id).unwrap().unwrap();
        assert_eq!(failed.status, Status::Failed);
        assert_eq!(failed.error.as_deref(), Some(INTERRUPTED));
        assert!(failed.finished_at_ms.is_some());
    }
}
