//! The inference queue and its workers (docker/CONTRACT.md, "Serving modes and the batcher").
//!
//! Requests are tokenized on arrival and queued, unpadded, in arrival order. `MAX_INFLIGHT` worker
//! threads take them from the queue's head:
//!
//! - `sequential`: a worker takes the oldest request alone; its rows are one inference.
//! - `batched`: a worker takes the oldest request, then the next oldest ones in order while the batch
//!   stays within `MAX_BATCH_TOKENS` padded tokens (rows × longest row) and at least half of its padded
//!   tokens are real. It stops at the first request that does not fit, which then leads the next batch.
//!   With `MAX_WAIT_US` > 0 and room left it waits for more until that long after the oldest request
//!   was queued. A request larger than the budget still runs, alone.
//!
//! One worker at a time forms a batch, so batches leave the queue in order and no request is overtaken,
//! whatever `MAX_INFLIGHT` is. The batch is padded to its longest row and run as one inference; each
//! request gets its own rows, in its own order, through a oneshot channel, and is answered as soon as
//! its batch finishes.

use crate::backend::Backend;
use crate::error::{ApiError, ErrorKind};
use crate::metrics::Metrics;
use crate::settings::{ServingMode, Settings};
use crate::tokenize::pad_right;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How the workers form batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub mode: ServingMode,
    /// Most padded tokens (rows × longest row) in one batched inference.
    pub max_batch_tokens: usize,
    /// How long a batch may wait for more requests after its oldest one was queued.
    pub max_wait: Duration,
}

impl Policy {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            mode: settings.serving,
            max_batch_tokens: settings.max_batch_tokens,
            max_wait: Duration::from_micros(settings.max_wait_us),
        }
    }

    /// Whether a request shaped `next` may join a batch shaped `batch`: never in sequential mode; in
    /// batched mode when the joined batch stays within the token budget with at least half of its
    /// padded tokens real.
    pub fn admits(&self, batch: Shape, next: Shape) -> bool {
        match self.mode {
            ServingMode::Sequential => false,
            ServingMode::Batched => {
                let joined = batch.join(next);
                joined.padded() <= self.max_batch_tokens && 2 * joined.real >= joined.padded()
            }
        }
    }

    /// Whether waiting (`MAX_WAIT_US`) could still add a request to a batch shaped `batch`.
    fn has_room(&self, batch: Shape) -> bool {
        self.mode == ServingMode::Batched && !self.max_wait.is_zero() && batch.padded() < self.max_batch_tokens
    }
}

/// The size of a request's or a batch's token rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    pub rows: usize,
    /// The longest row: every row is padded to it.
    pub longest: usize,
    /// Real (unpadded) tokens.
    pub real: usize,
}

impl Shape {
    pub fn of(rows: &[Vec<u32>]) -> Self {
        Self {
            rows: rows.len(),
            longest: rows.iter().map(Vec::len).max().unwrap_or(0),
            real: rows.iter().map(Vec::len).sum(),
        }
    }

    /// Tokens once padded: rows × longest row.
    pub fn padded(&self) -> usize {
        self.rows * self.longest
    }

    /// The shape of two batches run as one.
    pub fn join(self, other: Shape) -> Shape {
        Shape { rows: self.rows + other.rows, longest: self.longest.max(other.longest), real: self.real + other.real }
    }
}

/// What a queued request gets back once its batch has run.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// This request's embeddings, one per input, in its input order.
    pub rows: Vec<Vec<f32>>,
    /// The batch's runtime call started (the `queue` phase ends here).
    pub started: Instant,
    /// The batch's runtime call returned (the `inference` phase ends here).
    pub finished: Instant,
    /// Requests and rows in the inference that answered this request.
    pub batch_requests: usize,
    pub batch_rows: usize,
}

type Reply = oneshot::Sender<Result<Answer, ApiError>>;

/// A tokenized request in the queue.
struct Job {
    rows: Vec<Vec<u32>>,
    shape: Shape,
    queued: Instant,
    reply: Reply,
}

struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a request is queued or the queue closes; only the worker forming a batch waits on it.
    arrived: Condvar,
    /// Held by the one worker forming a batch.
    forming: Mutex<()>,
    policy: Policy,
    backend: Arc<dyn Backend>,
    pad_id: u32,
    embedding_dim: usize,
    metrics: Arc<Metrics>,
}

/// The queue and its `MAX_INFLIGHT` worker threads. Dropping it closes the queue: the workers end
/// once their current inference is done, and requests still queued are answered with an error.
pub struct Batcher {
    shared: Arc<Shared>,
}

/// Everything a [`Batcher`] needs.
pub struct BatcherConfig {
    pub backend: Arc<dyn Backend>,
    pub policy: Policy,
    /// How many inferences may run at once (`MAX_INFLIGHT`): one worker thread each.
    pub workers: usize,
    pub pad_id: u32,
    /// Values per answer row: a backend answering otherwise has failed.
    pub embedding_dim: usize,
    pub metrics: Arc<Metrics>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock cannot leave these structures half-changed.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Batcher {
    /// Starts the worker threads (`embbench-infer`).
    pub fn start(config: BatcherConfig) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue { jobs: VecDeque::new(), closed: false }),
            arrived: Condvar::new(),
            forming: Mutex::new(()),
            policy: config.policy,
            backend: config.backend,
            pad_id: config.pad_id,
            embedding_dim: config.embedding_dim,
            metrics: config.metrics,
        });
        for index in 0..config.workers.max(1) {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new().name("embbench-infer".into()).spawn(move || {
                shared.backend.prepare_inference_thread(index);
                while let Some(batch) = next_batch(&shared) {
                    run_batch(&shared, batch);
                }
            })?;
        }
        Ok(Self { shared })
    }

    /// Queues a request's token rows; returns when it was queued (the `queue` phase starts there) and
    /// where its answer will arrive.
    pub fn submit(&self, rows: Vec<Vec<u32>>) -> (Instant, oneshot::Receiver<Result<Answer, ApiError>>) {
        let (reply, answer) = oneshot::channel();
        let shape = Shape::of(&rows);
        let mut queue = lock(&self.shared.queue);
        let queued = Instant::now();
        if queue.closed {
            let _ = reply.send(Err(ApiError::new(ErrorKind::Backend, "the inference queue is closed")));
        } else {
            queue.jobs.push_back(Job { rows, shape, queued, reply });
        }
        drop(queue);
        self.shared.arrived.notify_one();
        (queued, answer)
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        let mut queue = lock(&self.shared.queue);
        queue.closed = true;
        for job in queue.jobs.drain(..) {
            let _ = job.reply.send(Err(ApiError::new(ErrorKind::Backend, "the server is shutting down")));
        }
        drop(queue);
        self.shared.arrived.notify_all();
    }
}

/// Waits for the queue to hold a request and forms the next batch; `None` once the queue is closed.
fn next_batch(shared: &Shared) -> Option<Vec<Job>> {
    let _forming = lock(&shared.forming);
    let mut queue = lock(&shared.queue);
    let first = loop {
        if queue.closed {
            return None;
        }
        match pop_waiting(&mut queue.jobs) {
            Some(job) => break job,
            None => queue = shared.arrived.wait(queue).unwrap_or_else(PoisonError::into_inner),
        }
    };
    let deadline = first.queued + shared.policy.max_wait;
    let mut shape = first.shape;
    let mut batch = vec![first];
    loop {
        let stopped = extend(&mut queue.jobs, &shared.policy, &mut batch, &mut shape);
        if stopped || queue.closed || !shared.policy.has_room(shape) {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        queue = shared.arrived.wait_timeout(queue, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
    }
    Some(batch)
}

/// The oldest request whose client still waits; requests whose client went away are dropped.
fn pop_waiting(jobs: &mut VecDeque<Job>) -> Option<Job> {
    while let Some(job) = jobs.pop_front() {
        if !job.reply.is_closed() {
            return Some(job);
        }
    }
    None
}

/// Moves the queue's oldest requests into `batch` while the policy admits them. True when it stopped
/// at a request that does not fit (which stays first in the queue), false when the queue ran out.
fn extend(jobs: &mut VecDeque<Job>, policy: &Policy, batch: &mut Vec<Job>, shape: &mut Shape) -> bool {
    while let Some(next) = jobs.front() {
        if next.reply.is_closed() {
            jobs.pop_front();
            continue;
        }
        if !policy.admits(*shape, next.shape) {
            return true;
        }
        *shape = shape.join(next.shape);
        batch.extend(jobs.pop_front());
    }
    false
}

/// Pads the batch, runs it as one inference and answers each request with its own rows.
fn run_batch(shared: &Shared, batch: Vec<Job>) {
    let rows: Vec<&[u32]> = batch.iter().flat_map(|job| job.rows.iter().map(Vec::as_slice)).collect();
    let tokens = pad_right(&rows, shared.pad_id);
    let started = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| shared.backend.embed(&tokens)));
    let finished = Instant::now();
    let outcome = match result {
        Ok(Ok(embeddings)) => check_rows(embeddings, tokens.batch, shared.embedding_dim),
        Ok(Err(e)) => Err(ApiError::new(ErrorKind::Backend, format!("inference failed: {e:#}"))),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            Err(ApiError::new(ErrorKind::Backend, format!("inference panicked: {what}")))
        }
    };
    let (batch_requests, batch_rows) = (batch.len(), tokens.batch);
    match outcome {
        Ok(embeddings) => {
            shared.metrics.record_batch(batch_rows as u64);
            let mut embeddings = embeddings.into_iter();
            for job in batch {
                let rows = embeddings.by_ref().take(job.shape.rows).collect();
                let _ = job.reply.send(Ok(Answer { rows, started, finished, batch_requests, batch_rows }));
            }
        }
        // One request's failure must not fail the others it shared the batch with: each runs again alone
        // (docker/CONTRACT.md), and only a request that fails alone answers the error.
        Err(_) if batch.len() > 1 => {
            for job in batch {
                run_batch(shared, vec![job]);
            }
        }
        Err(e) => {
            for job in batch {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}

/// A backend answering the wrong shape is a backend failure, not a client's problem.
fn check_rows(rows: Vec<Vec<f32>>, batch: usize, dim: usize) -> Result<Vec<Vec<f32>>, ApiError> {
    if rows.len() != batch {
        return Err(ApiError::new(
            ErrorKind::Backend,
            format!("backend answered {} rows for {batch} inputs", rows.len()),
        ));
    }
    if let Some(row) = rows.iter().find(|r| r.len() != dim) {
        return Err(ApiError::new(
            ErrorKind::Backend,
            format!("backend answered {} values per row, embedding_dim is {dim}", row.len()),
        ));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::TokenBatch;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Answers each row as [real length, first id, 0] once its gate is open; records every batch.
    #[derive(Default)]
    struct Gated {
        closed: Mutex<bool>,
        opened: Condvar,
        calls: AtomicUsize,
        seen: Mutex<Vec<TokenBatch>>,
        fail: bool,
        panic: bool,
        extra_row: bool,
        /// A batch holding a row that starts with this id fails (an input that breaks the runtime).
        poison: Option<u32>,
    }

    impl Gated {
        fn closed() -> Arc<Self> {
            Arc::new(Self { closed: Mutex::new(true), ..Default::default() })
        }

        fn open(&self) {
            *self.closed.lock().unwrap() = false;
            self.opened.notify_all();
        }

        /// Waits until `n` inferences have started.
        fn wait_calls(&self, n: usize) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.calls.load(Ordering::SeqCst) < n {
                assert!(Instant::now() < deadline, "{n} inferences never started");
                std::thread::sleep(Duration::from_millis(1));
            }
        }

        /// The first row id of each row of each batch: which requests' rows each inference held.
        fn batches(&self) -> Vec<Vec<u32>> {
            self.seen.lock().unwrap().iter().map(|b| b.input_ids.chunks(b.seq).map(|r| r[0]).collect()).collect()
        }
    }

    impl Backend for Gated {
        fn embed(&self, batch: &TokenBatch) -> anyhow::Result<Vec<Vec<f32>>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let mut closed = self.closed.lock().unwrap();
            while *closed {
                closed = self.opened.wait(closed).unwrap();
            }
            drop(closed);
            self.seen.lock().unwrap().push(batch.clone());
            if self.panic {
                panic!("the fake runtime crashed");
            }
            if self.fail {
                anyhow::bail!("the fake runtime failed");
            }
            if let Some(poison) = self.poison {
                if batch.input_ids.chunks(batch.seq).any(|row| row[0] == poison) {
                    anyhow::bail!("the fake runtime choked on {poison}");
                }
            }
            let mut rows: Vec<Vec<f32>> = batch
                .lengths()
                .iter()
                .zip(batch.input_ids.chunks(batch.seq))
                .map(|(&len, row)| vec![len as f32, row[0] as f32, 0.0])
                .collect();
            if self.extra_row {
                rows.push(vec![0.0; 3]);
            }
            Ok(rows)
        }
    }

    fn policy(mode: ServingMode, max_batch_tokens: usize, max_wait_ms: u64) -> Policy {
        Policy { mode, max_batch_tokens, max_wait: Duration::from_millis(max_wait_ms) }
    }

    fn batcher(backend: &Arc<Gated>, policy: Policy, workers: usize) -> (Batcher, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        let b = Batcher::start(BatcherConfig {
            backend: Arc::clone(backend) as Arc<dyn Backend>,
            policy,
            workers,
            pad_id: 0,
            embedding_dim: 3,
            metrics: Arc::clone(&metrics),
        })
        .unwrap();
        (b, metrics)
    }

    /// A request of rows with the given first ids and lengths (at least 1): `(first id, length)`.
    fn request(rows: &[(u32, usize)]) -> Vec<Vec<u32>> {
        rows.iter().map(|&(id, len)| std::iter::once(id).chain(std::iter::repeat_n(1, len - 1)).collect()).collect()
    }

    type Pending = oneshot::Receiver<Result<Answer, ApiError>>;

    fn answer(rx: Pending) -> Answer {
        rx.blocking_recv().expect("the batcher answers").expect("the inference succeeds")
    }

    /// Queues `first`, waits until its inference has started (and is held at the gate), then queues
    /// `rest`: they are all in the queue together when the worker next looks.
    fn queue_behind_a_running_inference(
        b: &Batcher,
        backend: &Gated,
        first: Vec<Vec<u32>>,
        rest: Vec<Vec<Vec<u32>>>,
    ) -> Vec<Pending> {
        let mut pending = vec![b.submit(first).1];
        backend.wait_calls(1);
        pending.extend(rest.into_iter().map(|rows| b.submit(rows).1));
        pending
    }

    #[test]
    fn queued_requests_share_one_inference_in_order_each_with_its_own_rows() {
        let backend = Gated::closed();
        let (b, metrics) = batcher(&backend, policy(ServingMode::Batched, 16_384, 0), 1);
        let pending = queue_behind_a_running_inference(
            &b,
            &backend,
            request(&[(10, 3)]),
            vec![request(&[(20, 2), (21, 4)]), request(&[(30, 3)]), request(&[(40, 4), (41, 2), (42, 3)])],
        );
        backend.open();
        let answers: Vec<Answer> = pending.into_iter().map(answer).collect();
        // The first request ran alone (MAX_WAIT_US=0: what was queued), the three queued behind it as one.
        assert_eq!(backend.batches(), vec![vec![10], vec![20, 21, 30, 40, 41, 42]]);
        // Padding to the batch's longest row (4) did not change any row: each got its own, in its order.
        let rows = |a: &Answer| a.rows.iter().map(|r| (r[1] as u32, r[0] as usize)).collect::<Vec<_>>();
        assert_eq!(rows(&answers[0]), vec![(10, 3)]);
        assert_eq!(rows(&answers[1]), vec![(20, 2), (21, 4)]);
        assert_eq!(rows(&answers[2]), vec![(30, 3)]);
        assert_eq!(rows(&answers[3]), vec![(40, 4), (41, 2), (42, 3)]);
        assert_eq!((answers[0].batch_requests, answers[0].batch_rows), (1, 1));
        for a in &answers[1..] {
            assert_eq!((a.batch_requests, a.batch_rows), (3, 6));
            assert_eq!((a.started, a.finished), (answers[1].started, answers[1].finished), "one inference");
        }
        assert!(answers[0].finished <= answers[1].started);
        let m = metrics.render();
        assert!(m.contains("embbench_batch_size_count 2\n") && m.contains("embbench_batch_size_sum 7\n"), "{m}");
    }

    #[test]
    fn sequential_runs_each_request_alone_in_arrival_order() {
        let backend = Gated::closed();
        let (b, metrics) = batcher(&backend, policy(ServingMode::Sequential, 16_384, 50), 1);
        let pending = queue_behind_a_running_inference(
            &b,
            &backend,
            request(&[(10, 2)]),
            (11..20).map(|id| request(&[(id, 2), (id + 100, 3)])).collect(),
        );
        backend.open();
        let answers: Vec<Answer> = pending.into_iter().map(answer).collect();
        let mut expected = vec![vec![10]];
        expected.extend((11..20).map(|id| vec![id, id + 100]));
        assert_eq!(backend.batches(), expected);
        assert!(answers.windows(2).all(|w| w[0].finished <= w[1].started), "one at a time, in order");
        assert!(metrics.render().contains("embbench_batch_size_count 10\n"));
    }

    #[test]
    fn the_token_budget_stops_at_the_first_request_that_does_not_fit() {
        let backend = Gated::closed();
        // 12 padded tokens at most.
        let (b, _) = batcher(&backend, policy(ServingMode::Batched, 12, 0), 1);
        let pending = queue_behind_a_running_inference(
            &b,
            &backend,
            request(&[(1, 2)]),
            vec![
                request(&[(20, 3), (21, 3)]), // 2 × 3 = 6
                request(&[(30, 3)]),          // 3 × 3 = 9
                request(&[(40, 4)]),          // 4 × 4 = 16 > 12: stops the batch and leads the next
                request(&[(50, 2)]),          // would fit beside 20, 21, 30 (4 × 3 = 12), but is not let ahead of 40
                request(&[(60, 4)]),          // 3 × 4 = 12 with 40 and 50
            ],
        );
        backend.open();
        for rx in pending {
            answer(rx);
        }
        assert_eq!(backend.batches(), vec![vec![1], vec![20, 21, 30], vec![40, 50, 60]]);
        let padded: Vec<usize> = backend.seen.lock().unwrap().iter().map(|t| t.batch * t.seq).collect();
        assert!(padded.iter().all(|&p| p <= 12), "{padded:?}");
    }

    #[test]
    fn half_of_a_batch_must_be_real_tokens() {
        let backend = Gated::closed();
        let (b, _) = batcher(&backend, policy(ServingMode::Batched, 16_384, 0), 1);
        let pending = queue_behind_a_running_inference(
            &b,
            &backend,
            request(&[(1, 2)]),
            vec![
                request(&[(20, 4), (21, 4), (22, 4)]), // 12 real of 12
                // 4 rows × 10 = 40 padded with 22 real: fits (22 ≥ 20).
                request(&[(30, 10)]),
                // 5 rows × 30 = 150 padded with 52 real: under half, so it leads the next batch.
                request(&[(40, 30)]),
                request(&[(50, 20)]), // 2 × 30 = 60 with 50 real
                request(&[(60, 8)]),  // 3 × 30 = 90 with 58 real
                request(&[(70, 1)]),  // 4 × 30 = 120 with 59 real: just under half
            ],
        );
        backend.open();
        for rx in pending {
            answer(rx);
        }
        assert_eq!(backend.batches(), vec![vec![1], vec![20, 21, 22, 30], vec![40, 50, 60], vec![70]]);
    }

    #[test]
    fn a_request_over_the_budget_runs_alone() {
        let backend = Gated::closed();
        let (b, _) = batcher(&backend, policy(ServingMode::Batched, 8, 0), 1);
        let pending = queue_behind_a_running_inference(
            &b,
            &backend,
            request(&[(1, 2)]),
            vec![
                request(&[(20, 2)]),
                request(&[(30, 5), (31, 5), (32, 5)]), // 15 padded tokens alone: over the budget of 8
                request(&[(40, 2)]),
                request(&[(50, 2)]),
            ],
        );
        backend.open();
        let answers: Vec<Answer> = pending.into_iter().map(answer).collect();
        assert_eq!(backend.batches(), vec![vec![1], vec![20], vec![30, 31, 32], vec![40, 50]]);
        assert_eq!(answers[2].rows.len(), 3);
        assert_eq!(answers[2].batch_requests, 1);
    }

    #[test]
    fn max_wait_holds_a_batch_open_for_later_requests() {
        let backend = Arc::new(Gated::default());
        let (b, _) = batcher(&backend, policy(ServingMode::Batched, 16_384, 150), 1);
        let (queued, first) = b.submit(request(&[(10, 2)]));
        std::thread::sleep(Duration::from_millis(40));
        let (_, second) = b.submit(request(&[(20, 2)]));
        let (a, c) = (answer(first), answer(second));
        assert_eq!(backend.batches(), vec![vec![10, 20]], "the later request joined the waiting batch");
        assert_eq!(a.started, c.started);
        // The batch had room left, so it waited until MAX_WAIT_US after its oldest request was queued.
        assert!(a.started >= queued + Duration::from_millis(150), "{:?}", a.started - queued);
    }

    #[test]
    fn max_wait_0_runs_a_lone_request_at_once() {
        let backend = Arc::new(Gated::default());
        let (b, _) = batcher(&backend, policy(ServingMode::Batched, 16_384, 0), 1);
        let (queued, rx) = b.submit(request(&[(10, 2)]));
        let a = answer(rx);
        assert!(a.started - queued < Duration::from_millis(100), "{:?}", a.started - queued);
        assert_eq!(backend.batches(), vec![vec![10]]);
    }

    #[test]
    fn waiting_ends_when_the_batch_is_full_or_a_request_does_not_fit() {
        // Full: two requests of 2 × 2 fill a budget of 8, so the batch runs long before MAX_WAIT_US.
        let backend = Arc::new(Gated::default());
        let (b, _) = batcher(&backend, policy(ServingMode::Batched, 8, 10_000), 1);
        let (queued, first) = b.submit(request(&[(10, 2), (11, 2)]));
        let (_, second) = b.submit(request(&[(20, 2), (21, 2)]));
        let a = answer(first);
        answer(second);
        assert!(a.started - queued < Duration::from_secs(5), "{:?}", a.started - queued);
        assert_eq!(backend.batches(), vec![vec![10, 11, 20, 21]]);

        // Does not fit: the batch closes at once and the newcomer leads the next one, which waits.
        let backend = Arc::new(Gated::default());
        let (b, _) = batcher(&backend, policy(ServingMode::Batched, 8, 300), 1);
        let (queued, first) = b.submit(request(&[(10, 2)]));
        let (_, second) = b.submit(request(&[(20, 5), (21, 5)]));
        let a = answer(first);
        let c = answer(second);
        assert!(a.started - queued < Duration::from_millis(300), "{:?}", a.started - queued);
        assert_eq!(backend.batches(), vec![vec![10], vec![20, 21]]);
        assert!(c.started >= a.finished);
    }

    #[test]
    fn max_inflight_workers_run_batches_side_by_side_in_queue_order() {
        let backend = Gated::closed();
        let (b, _) = batcher(&backend, policy(ServingMode::Sequential, 16_384, 0), 2);
        let first = b.submit(request(&[(10, 2)])).1;
        let second = b.submit(request(&[(20, 2)])).1;
        backend.wait_calls(2); // both workers are inside the backend at once
        let third = b.submit(request(&[(30, 2)])).1;
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(backend.calls.load(Ordering::SeqCst), 2, "no third inference while both workers are busy");
        backend.open();
        let [a, b, c] = [first, second, third].map(answer);
        assert!(a.started < b.finished && b.started < a.finished, "the first two overlapped");
        assert!(c.started >= a.finished.min(b.finished), "the third waited for a free worker");
        let mut seen = backend.batches();
        seen.sort();
        assert_eq!(seen, vec![vec![10], vec![20], vec![30]]);
    }

    #[test]
    fn a_request_whose_client_left_is_not_run() {
        let backend = Gated::closed();
        let (b, _) = batcher(&backend, policy(ServingMode::Sequential, 16_384, 0), 1);
        let mut pending = queue_behind_a_running_inference(
            &b,
            &backend,
            request(&[(10, 2)]),
            vec![request(&[(20, 2)]), request(&[(30, 2)])],
        );
        drop(pending.remove(1)); // the client of request 20 disconnected while it was queued
        backend.open();
        for rx in pending {
            answer(rx);
        }
        assert_eq!(backend.batches(), vec![vec![10], vec![30]]);
    }

    #[test]
    fn a_failed_batch_answers_every_request_with_the_error_and_the_worker_goes_on() {
        for (fail, panic, extra_row, says) in [
            (true, false, false, "inference failed: the fake runtime failed"),
            (false, true, false, "inference panicked: the fake runtime crashed"),
            (false, false, true, "backend answered one row too many"),
        ] {
            let backend = Arc::new(Gated { closed: Mutex::new(true), fail, panic, extra_row, ..Default::default() });
            let (b, metrics) = batcher(&backend, policy(ServingMode::Batched, 16_384, 0), 1);
            let pending = queue_behind_a_running_inference(
                &b,
                &backend,
                request(&[(10, 2)]),
                vec![request(&[(20, 2)]), request(&[(30, 2), (31, 2)])],
            );
            backend.open();
            for (rx, rows) in pending.into_iter().zip([1, 1, 2]) {
                let e = rx.blocking_recv().unwrap().unwrap_err();
                assert_eq!(e.kind, ErrorKind::Backend);
                let says = says.replace("one row too many", &format!("{} rows for {rows} inputs", rows + 1));
                assert!(e.message.contains(&says), "{}", e.message);
            }
            // The shared batch failed, so each of its requests ran again alone (and failed alone).
            assert_eq!(backend.batches(), vec![vec![10], vec![20, 30, 31], vec![20], vec![30, 31]]);
            assert!(metrics.render().contains("embbench_batch_size_count 0\n"), "failed inferences are not counted");
            // The worker survived and serves the next request.
            let rx = b.submit(request(&[(40, 2)])).1;
            assert!(rx.blocking_recv().unwrap().is_err());
            assert_eq!(backend.batches().len(), 5);
        }
    }

    #[test]
    fn a_request_that_fails_a_shared_batch_fails_alone_and_the_others_are_answered() {
        let backend = Arc::new(Gated { closed: Mutex::new(true), poison: Some(66), ..Default::default() });
        let (b, metrics) = batcher(&backend, policy(ServingMode::Batched, 16_384, 0), 1);
        let pending = queue_behind_a_running_inference(
            &b,
            &backend,
            request(&[(10, 2)]),
            vec![request(&[(20, 2)]), request(&[(66, 2)]), request(&[(30, 3)])],
        );
        backend.open();
        let answers: Vec<_> = pending.into_iter().map(|rx| rx.blocking_recv().unwrap()).collect();
        assert_eq!(answers[0].as_ref().unwrap().rows, vec![vec![2.0, 10.0, 0.0]]);
        assert_eq!(answers[1].as_ref().unwrap().rows, vec![vec![2.0, 20.0, 0.0]]);
        let e = answers[2].as_ref().unwrap_err();
        assert!(e.kind == ErrorKind::Backend && e.message.contains("choked on 66"), "{}", e.message);
        assert_eq!(answers[3].as_ref().unwrap().rows, vec![vec![3.0, 30.0, 0.0]]);
        assert_eq!(backend.batches(), vec![vec![10], vec![20, 66, 30], vec![20], vec![66], vec![30]]);
        assert!(metrics.render().contains("embbench_batch_size_count 3\n"), "{}", metrics.render());
    }

    #[test]
    fn dropping_the_batcher_answers_queued_requests_and_refuses_new_ones() {
        let backend = Gated::closed();
        let (b, _) = batcher(&backend, policy(ServingMode::Sequential, 16_384, 0), 1);
        let mut pending =
            queue_behind_a_running_inference(&b, &backend, request(&[(10, 2)]), vec![request(&[(20, 2)])]);
        let queued = pending.pop().unwrap();
        let b2 = Batcher { shared: Arc::clone(&b.shared) };
        drop(b);
        let e = queued.blocking_recv().unwrap().unwrap_err();
        assert!(e.message.contains("shutting down"), "{}", e.message);
        let e = b2.submit(request(&[(30, 2)])).1.blocking_recv().unwrap().unwrap_err();
        assert!(e.message.contains("closed"), "{}", e.message);
        backend.open();
        assert_eq!(answer(pending.pop().unwrap()).rows.len(), 1, "the running inference still answers");
    }

    #[test]
    fn the_policy_follows_the_contract() {
        let batched = policy(ServingMode::Batched, 100, 0);
        let shape = |rows, longest, real| Shape { rows, longest, real };
        assert!(batched.admits(shape(2, 10, 20), shape(3, 10, 30)), "50 real of 50");
        assert!(batched.admits(shape(5, 10, 50), shape(5, 10, 50)), "exactly the budget: 10 × 10");
        assert!(!batched.admits(shape(9, 10, 90), shape(2, 10, 20)), "110 padded tokens");
        assert!(batched.admits(shape(3, 4, 12), shape(1, 8, 8)), "20 real of 32");
        assert!(batched.admits(shape(2, 2, 4), shape(1, 8, 8)), "exactly half: 12 real of 24");
        assert!(!batched.admits(shape(2, 2, 4), shape(1, 9, 9)), "13 real of 27");
        assert!(!batched.admits(shape(3, 2, 6), shape(1, 10, 10)), "16 real of 40");
        assert!(batched.admits(shape(1, 10, 10), shape(1, 3, 3)), "a short row joins a long one: 13 of 20");
        assert!(!policy(ServingMode::Sequential, 100, 0).admits(shape(1, 1, 1), shape(1, 1, 1)));
        assert_eq!(Shape::of(&request(&[(1, 3), (2, 5)])), shape(2, 5, 8));
        assert_eq!(Shape::of(&[]), Shape::default());
    }
}
