//! A second thread for the parts of a Newton iteration that split in two (link coefficients,
//! the factorization), kept waiting between iterations.
//!
//! A Newton iteration of a network of a few thousand junctions takes tens of microseconds,
//! too short to start a thread or to wake a sleeping one for each half. The helper spins
//! for a while after each job and only then sleeps; a job it has not begun is run by the
//! caller itself. Whether the helper pays at all depends on the machine (a busy core, cores
//! far apart): [`OwnHelper`] times periods with and without it and keeps the faster way.

use std::any::Any;
use std::cell::UnsafeCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the helper spins for the next job before it sleeps.
const SPIN_BEFORE_SLEEP: Duration = Duration::from_micros(500);

/// How long a thread waiting for the other spins before it yields its core now and then.
const SPIN_BEFORE_YIELD: Duration = Duration::from_micros(20);

/// A solver tries its periods with and without its helper for this many periods (half each,
/// alternating) ...
const TRIAL_PERIODS: u64 = 8;
/// ... at the start and then after this many periods, and keeps the faster way until the
/// next trial; each trial that confirms the choice doubles the wait for the next one, up to
/// `MAX_TRIAL_GAP`. Two cores are not always two free cores (other programs, a virtual
/// machine's cores placed far apart by its host): then the helper costs more than it saves.
const FIRST_TRIAL_GAP: u64 = 64;
const MAX_TRIAL_GAP: u64 = 1024;
/// Between trials, the kept way is checked every this many iterations: one more than
/// `RETRY_SLOWDOWN` times slower than the other way was starts a trial at once.
const WATCH_ITERATIONS: u64 = 40;
const RETRY_SLOWDOWN: f64 = 1.25;

const IDLE: u8 = 0;
const POSTED: u8 = 1;
const RUNNING: u8 = 2;
const DONE: u8 = 3;
const EXIT: u8 = 4;

/// A job posted to the helper: a type-erased pointer to a [`StackJob`] on the caller's
/// stack and the function that runs it.
#[derive(Clone, Copy)]
struct JobRef {
    job: *const (),
    run: unsafe fn(*const ()),
}

struct Shared {
    state: AtomicU8,
    job: UnsafeCell<Option<JobRef>>,
    sleeping: AtomicBool,
    panic: UnsafeCell<Option<Box<dyn Any + Send>>>,
}

// SAFETY: `job` and `panic` are written by one side and read by the other only across the
// `state` transitions (Release stores, Acquire loads), which order those accesses.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

/// One helper thread, owned by one solver and used by one thread at a time.
pub(crate) struct Helper {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Helper {
    /// Starts the helper thread; `None` when the system cannot start one.
    pub(crate) fn start() -> Option<Self> {
        let shared = Arc::new(Shared {
            state: AtomicU8::new(IDLE),
            job: UnsafeCell::new(None),
            sleeping: AtomicBool::new(false),
            panic: UnsafeCell::new(None),
        });
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("aquatwin-solver-helper".into())
            .spawn(move || helper_loop(&theirs))
            .ok()?;
        Some(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Runs `first` here and `second` on the helper (or here, after `first`, when the
    /// helper has not taken it up by then), and returns both results.
    pub(crate) fn join<A, B, RA, RB>(&self, first: A, second: B) -> (RA, RB)
    where
        A: FnOnce() -> RA,
        B: FnOnce() -> RB + Send,
        RB: Send,
    {
        let job = StackJob {
            task: UnsafeCell::new(Some(second)),
            result: UnsafeCell::new(None),
        };
        let shared = &*self.shared;
        // SAFETY: the helper reads `job` only after seeing POSTED, and this thread does not
        // touch it again until the state has left POSTED and RUNNING.
        unsafe {
            *shared.job.get() = Some(JobRef {
                job: (&job as *const StackJob<B, RB>).cast(),
                run: StackJob::<B, RB>::run,
            });
        }
        shared.state.store(POSTED, Ordering::SeqCst);
        if shared.sleeping.load(Ordering::SeqCst) {
            if let Some(thread) = &self.thread {
                thread.thread().unpark();
            }
        }
        // Whatever happens to `first`, the job must be finished or taken back before
        // `job` leaves the stack.
        let guard = WaitForJob { shared };
        let first_result = first();
        let taken_back = guard.take_back_or_wait();
        std::mem::forget(guard);
        if taken_back {
            // SAFETY: the helper never started the job, and will not now.
            let task = unsafe { (*job.task.get()).take() };
            let second = task.expect("a posted job not started still has its task");
            return (first_result, second());
        }
        // SAFETY: the helper has finished with the job (state DONE, seen with Acquire).
        if let Some(payload) = unsafe { (*shared.panic.get()).take() } {
            resume_unwind(payload);
        }
        let result = unsafe { (*job.result.get()).take() };
        (
            first_result,
            result.expect("a finished job without a panic has a result"),
        )
    }
}

/// An array shared by the threads of a join that take parts of it one at a time (groups of
/// the factorization, chunks of links): each part is taken by one thread, and the parts do
/// not overlap.
pub(crate) struct SharedSlice {
    values: *mut f64,
    len: usize,
}

// SAFETY: the threads reach the values only through `range_mut` and `range`, whose callers
// guarantee that no two threads hold overlapping ranges where one of them writes.
unsafe impl Send for SharedSlice {}
unsafe impl Sync for SharedSlice {}

impl SharedSlice {
    pub(crate) fn new(values: &mut [f64]) -> Self {
        Self {
            values: values.as_mut_ptr(),
            len: values.len(),
        }
    }

    /// # Safety
    /// No other live reference overlaps `range` while the slice lives, and the array
    /// outlives it.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn range_mut(&self, range: std::ops::Range<usize>) -> &mut [f64] {
        assert!(range.start <= range.end && range.end <= self.len);
        std::slice::from_raw_parts_mut(self.values.add(range.start), range.len())
    }

    /// # Safety
    /// No mutable reference overlaps `range` while the slice lives, and the array outlives it.
    pub(crate) unsafe fn range(&self, range: std::ops::Range<usize>) -> &[f64] {
        assert!(range.start <= range.end && range.end <= self.len);
        std::slice::from_raw_parts(self.values.add(range.start), range.len())
    }
}

/// A solver's helper, if it has one, and whether its periods use it: not shared with the
/// solver's clones, which may run on other threads at the same time (a clone runs on one
/// thread).
#[derive(Default)]
pub(crate) struct OwnHelper {
    helper: Option<Helper>,
    /// Periods solved so far.
    periods: u64,
    /// The period the next trial starts at, and the periods from the last trial's end to it.
    next_trial: u64,
    trial_gap: u64,
    /// Time and Newton iterations of the current trial's periods with the helper, and
    /// without it.
    with: (Duration, u64),
    without: (Duration, u64),
    /// Whether periods outside a trial use the helper.
    faster_with: bool,
    /// Seconds per iteration of the way not kept, at the last trial.
    other_per_iteration: f64,
    /// Time and iterations of the periods since the last trial or check.
    since_trial: (Duration, u64),
}

impl OwnHelper {
    /// A helper thread, or none when the system cannot start one.
    pub(crate) fn start() -> Self {
        Self {
            helper: Helper::start(),
            // The first periods, slower for a cold start either way, only warm up.
            next_trial: TRIAL_PERIODS,
            trial_gap: FIRST_TRIAL_GAP,
            faster_with: true,
            ..Self::default()
        }
    }

    /// Whether there is a helper thread.
    pub(crate) fn exists(&self) -> bool {
        self.helper.is_some()
    }

    /// The helper the next period is to use, if any.
    pub(crate) fn for_period(&self) -> Option<&Helper> {
        let with = match self.periods.checked_sub(self.next_trial) {
            Some(phase) if phase < TRIAL_PERIODS => phase % 2 == 0,
            _ => self.faster_with,
        };
        self.helper.as_ref().filter(|_| with)
    }

    /// Counts a period solved in `elapsed` over `iterations` Newton iterations, with the
    /// helper or without it; at the end of a trial, keeps the faster way.
    pub(crate) fn period_done(&mut self, with_helper: bool, elapsed: Duration, iterations: u64) {
        let trial_phase = self.periods.checked_sub(self.next_trial);
        self.periods += 1;
        let Some(phase) = trial_phase.filter(|&phase| phase < TRIAL_PERIODS) else {
            // Between trials: a way that has become slower than the other one was at the
            // last trial (the machine changed) calls for a trial now.
            self.since_trial.0 += elapsed;
            self.since_trial.1 += iterations;
            if self.since_trial.1 >= WATCH_ITERATIONS {
                if per_iteration(self.since_trial) > RETRY_SLOWDOWN * self.other_per_iteration {
                    self.next_trial = self.periods;
                    self.trial_gap = FIRST_TRIAL_GAP;
                }
                self.since_trial = (Duration::ZERO, 0);
            }
            return;
        };
        let sums = if with_helper {
            &mut self.with
        } else {
            &mut self.without
        };
        sums.0 += elapsed;
        sums.1 += iterations;
        if phase + 1 == TRIAL_PERIODS {
            let (with, without) = (per_iteration(self.with), per_iteration(self.without));
            let faster_with = with <= without;
            self.other_per_iteration = if faster_with { without } else { with };
            self.since_trial = (Duration::ZERO, 0);
            self.trial_gap = if faster_with == self.faster_with {
                (self.trial_gap * 2).min(MAX_TRIAL_GAP)
            } else {
                FIRST_TRIAL_GAP
            };
            self.faster_with = faster_with;
            self.next_trial = self.periods + self.trial_gap;
            self.with = (Duration::ZERO, 0);
            self.without = (Duration::ZERO, 0);
        }
    }
}

impl Clone for OwnHelper {
    fn clone(&self) -> Self {
        Self::default()
    }
}

/// Seconds per Newton iteration of `(time, iterations)`.
fn per_iteration((time, iterations): (Duration, u64)) -> f64 {
    time.as_secs_f64() / iterations.max(1) as f64
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.shared.state.store(EXIT, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            // A helper that panicked outside a job has nothing left to report.
            let _ = thread.join();
        }
    }
}

/// Waits for a posted job when dropped: keeps the job's stack frame alive while the helper
/// may still run it, also when the caller's own half panics.
struct WaitForJob<'a> {
    shared: &'a Shared,
}

impl WaitForJob<'_> {
    /// Takes the job back if the helper has not started it (`true`), else waits until it is
    /// done (`false`); the state is IDLE afterwards.
    fn take_back_or_wait(&self) -> bool {
        let state = &self.shared.state;
        if state
            .compare_exchange(POSTED, IDLE, Ordering::Acquire, Ordering::Acquire)
            .is_ok()
        {
            return true;
        }
        let mut wait = Wait::new();
        while state.load(Ordering::Acquire) != DONE {
            wait.pause();
        }
        state.store(IDLE, Ordering::Release);
        false
    }
}

impl Drop for WaitForJob<'_> {
    fn drop(&mut self) {
        self.take_back_or_wait();
        // The caller is unwinding from its own half already: a panic of the helper's half
        // is dropped rather than left for the next join.
        // SAFETY: the helper is done with the job (or never started it).
        drop(unsafe { (*self.shared.panic.get()).take() });
    }
}

/// A wait for the other thread's share of some work: spinning at first, yielding the core
/// now and then once it lasts (the other thread was preempted and needs a core to finish).
pub(crate) struct Wait {
    spins: u32,
    started: Option<Instant>,
}

impl Wait {
    pub(crate) fn new() -> Self {
        Self {
            spins: 0,
            started: None,
        }
    }

    /// One round of waiting.
    pub(crate) fn pause(&mut self) {
        self.spins = self.spins.wrapping_add(1);
        if !self.spins.is_multiple_of(32) {
            std::hint::spin_loop();
            return;
        }
        let started = *self.started.get_or_insert_with(Instant::now);
        if started.elapsed() >= SPIN_BEFORE_YIELD {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// The second half of a join, on the stack of the thread that posted it.
struct StackJob<B, RB> {
    task: UnsafeCell<Option<B>>,
    result: UnsafeCell<Option<RB>>,
}

impl<B: FnOnce() -> RB, RB> StackJob<B, RB> {
    /// Runs the task and keeps its result.
    ///
    /// # Safety
    /// `job` points to a live `StackJob<B, RB>` whose poster waits for DONE before reading it.
    unsafe fn run(job: *const ()) {
        let job = &*job.cast::<Self>();
        if let Some(task) = (*job.task.get()).take() {
            *job.result.get() = Some(task());
        }
    }
}

fn helper_loop(shared: &Shared) {
    loop {
        let mut since = Instant::now();
        loop {
            match shared.state.load(Ordering::Acquire) {
                POSTED
                    if shared
                        .state
                        .compare_exchange(POSTED, RUNNING, Ordering::Acquire, Ordering::Acquire)
                        .is_ok() =>
                {
                    break;
                }
                EXIT => return,
                _ => {}
            }
            for _ in 0..64 {
                std::hint::spin_loop();
            }
            if since.elapsed() < SPIN_BEFORE_SLEEP {
                continue;
            }
            shared.sleeping.store(true, Ordering::SeqCst);
            if matches!(shared.state.load(Ordering::SeqCst), IDLE | DONE) {
                std::thread::park();
            }
            shared.sleeping.store(false, Ordering::SeqCst);
            since = Instant::now();
        }
        // SAFETY: POSTED was seen (Acquire), so the poster's write of `job` is visible, and
        // the poster waits for DONE before the job leaves its stack.
        let outcome = catch_unwind(AssertUnwindSafe(|| unsafe {
            if let Some(job) = *shared.job.get() {
                (job.run)(job.job);
            }
        }));
        if let Err(payload) = outcome {
            // SAFETY: read by the poster only after DONE (Release below).
            unsafe { *shared.panic.get() = Some(payload) };
        }
        shared.state.store(DONE, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_halves_run_and_return_their_results() {
        let helper = Helper::start().unwrap();
        let mut left = vec![0u64; 1000];
        let mut right = vec![0u64; 1000];
        for round in 0..2000u64 {
            let (a, b) = helper.join(
                || {
                    left.iter_mut().for_each(|x| *x += round);
                    left[0]
                },
                || {
                    right.iter_mut().for_each(|x| *x += 2 * round);
                    right[999]
                },
            );
            assert_eq!((a, b), (round * (round + 1) / 2, round * (round + 1)));
        }
    }

    #[test]
    fn a_panic_in_the_second_half_reaches_the_caller() {
        let helper = Helper::start().unwrap();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            helper.join(|| 1, || -> u32 { panic!("second half failed") })
        }));
        assert!(outcome.is_err());
        // The helper keeps working afterwards.
        assert_eq!(helper.join(|| 1, || 2), (1, 2));
    }

    /// Runs `periods` periods through `own`, each of 10 iterations taking `with` or
    /// `without` per iteration; the periods that used the helper.
    fn periods_with_helper(own: &mut OwnHelper, periods: u64, with: u64, without: u64) -> u64 {
        let mut used = 0;
        for _ in 0..periods {
            let with_helper = own.for_period().is_some();
            let per_iteration = if with_helper { with } else { without };
            own.period_done(with_helper, Duration::from_micros(10 * per_iteration), 10);
            used += u64::from(with_helper);
        }
        used
    }

    #[test]
    fn the_helper_is_used_only_while_it_makes_periods_faster() {
        let mut own = OwnHelper::start();
        // Faster with it: warm-up and trial, then every period but half of each trial.
        let used = periods_with_helper(&mut own, 200, 50, 75);
        assert!(used >= 190, "{used} of 200 periods");
        // The machine gets busy: the next trials see it, and the helper is left out.
        periods_with_helper(&mut own, 1100, 90, 75);
        let used = periods_with_helper(&mut own, 1000, 90, 75);
        assert!(used <= 10, "{used} of 1000 periods");
        // A clone runs on one thread.
        assert!(own.clone().for_period().is_none());
    }

    #[test]
    fn jobs_after_a_sleep_still_run() {
        let helper = Helper::start().unwrap();
        std::thread::sleep(SPIN_BEFORE_SLEEP * 3);
        assert_eq!(helper.join(|| 3, || 4), (3, 4));
    }
}
