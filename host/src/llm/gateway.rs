//! The one entry point for every model call. It puts calls in a queue with a
//! concurrency limit, retries transient failures with exponential backoff
//! and jitter (honouring `retry-after`, up to a bound), fails fast through a
//! circuit breaker after repeated failures, records each response when
//! recording, and writes usage and cost of every call to `usage.jsonl`.
//!
//! The queue and the breaker belong to the provider, not to one agent:
//! every agent of a process (each run of `boram serve`, each sub-agent)
//! gets a [`Gateway::sibling`] sharing them. So however many runs start
//! against a failing provider, at most `breaker_threshold + concurrency`
//! requests reach it before the breaker opens, then one trial per
//! cooldown. The breaker is checked when a call leaves the queue, so calls
//! queued before it opened do not go out anyway.
//!
//! Cost is priced by the model the request named (the more expensive of
//! that and the model the server reports, when both are priced), so a
//! server answering with an unpriced name cannot switch the budget off.

use super::error::{LlmError, Result, Retry};
use super::pricing::PriceTable;
use super::record::Recorder;
use super::types::*;
use super::{Provider, ProviderKind};
use crate::audit::JsonlFile;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Calls in flight at once per provider.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Retries after the first attempt.
pub const DEFAULT_MAX_RETRIES: u32 = 4;
/// First backoff; doubles each retry.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Longest backoff between two attempts.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(20);
/// Longest `retry-after` we wait; a server asking for more gets its error surfaced.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Consecutive failed attempts that open the circuit breaker.
pub const DEFAULT_BREAKER_THRESHOLD: u32 = 5;
/// How long an open breaker fails calls before letting one trial through.
pub const DEFAULT_BREAKER_COOLDOWN: Duration = Duration::from_secs(30);

/// How the gateway queues and retries.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    pub concurrency: usize,
    pub max_retries: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub max_retry_after: Duration,
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_CONCURRENCY,
            max_retries: DEFAULT_MAX_RETRIES,
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_max: DEFAULT_BACKOFF_MAX,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
            breaker_threshold: DEFAULT_BREAKER_THRESHOLD,
            breaker_cooldown: DEFAULT_BREAKER_COOLDOWN,
        }
    }
}

/// A successful call and what it cost.
#[derive(Debug, Clone)]
pub struct Completion {
    pub response: ChatResponse,
    /// `None` when the model has no price (unknown local model).
    pub cost_usd: Option<f64>,
    pub attempts: u32,
    pub duration: Duration,
}

/// What every agent of a process shares for one provider.
struct Shared {
    provider: Arc<dyn Provider>,
    options: GatewayOptions,
    queue: Semaphore,
    breaker: Mutex<Breaker>,
    prices: PriceTable,
}

pub struct Gateway {
    shared: Arc<Shared>,
    usage_log: Option<JsonlFile>,
    recorder: Option<Recorder>,
    usage_observer: Option<UsageObserver>,
}

/// Hears about every completed model call: model, usage, cost (metrics).
pub type UsageObserver = Arc<dyn Fn(&str, &Usage, Option<f64>) + Send + Sync>;

impl Gateway {
    pub fn new(provider: Arc<dyn Provider>, options: GatewayOptions, prices: PriceTable) -> Self {
        Self {
            shared: Arc::new(Shared {
                queue: Semaphore::new(options.concurrency.max(1)),
                provider,
                options,
                breaker: Mutex::new(Breaker::default()),
                prices,
            }),
            usage_log: None,
            recorder: None,
            usage_observer: None,
        }
    }

    /// A gateway to the same provider sharing this one's queue and breaker,
    /// without its usage log, recorder or observer (another agent's).
    pub fn sibling(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            usage_log: None,
            recorder: None,
            usage_observer: None,
        }
    }

    /// Reports every completed call to `observer` too.
    pub fn with_usage_observer(mut self, observer: UsageObserver) -> Self {
        self.usage_observer = Some(observer);
        self
    }

    /// Appends one line per call to this file (`usage.jsonl`).
    pub fn with_usage_log(mut self, log: JsonlFile) -> Self {
        self.usage_log = Some(log);
        self
    }

    /// Waits until the usage lines of the calls made so far are in
    /// `usage.jsonl`.
    pub async fn flush_usage(&self) {
        if let Some(log) = &self.usage_log
            && let Err(e) = log.flush().await
        {
            tracing::debug!(error = %e, "usage lines were lost");
        }
    }

    /// Saves every response for `--replay`.
    pub fn with_recorder(mut self, recorder: Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    pub fn provider_kind(&self) -> ProviderKind {
        self.shared.provider.kind()
    }

    pub fn prices(&self) -> &PriceTable {
        &self.shared.prices
    }

    /// What a reply to `requested` costs: priced by the requested model, or
    /// by the reported one when that is dearer. `None` when neither is priced.
    pub fn cost(&self, requested: &str, reported: &str, usage: &Usage) -> Option<f64> {
        // A replayed recording was paid for when it was recorded.
        if self.shared.provider.kind() == ProviderKind::Replay {
            return Some(0.0);
        }
        let cost = |model: &str| self.shared.prices.price(model).map(|p| p.cost(usage));
        match (cost(requested), cost(reported)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sends `request`, retrying transient failures. `session` labels the usage line.
    pub async fn send(&self, request: &ChatRequest, deltas: DeltaSink<'_>, session: &str) -> Result<Completion> {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = {
                let _permit = self.shared.queue.acquire().await.map_err(|_| LlmError::Cancelled)?;
                // Checked once the call has its turn: the breaker may have
                // opened while it waited in the queue.
                self.check_breaker()?;
                self.shared.provider.send(request, deltas).await
            };
            let error = match result {
                Ok(response) => {
                    self.lock_breaker().succeeded();
                    return Ok(self.completed(request, response, attempt, started.elapsed(), session));
                }
                Err(error) => error,
            };
            self.lock_breaker().failed(&error, &self.shared.options);
            let wait = match error.retry() {
                Retry::No => return Err(error),
                _ if attempt > self.shared.options.max_retries => return Err(error),
                // A local server that is not running will not start by itself.
                _ if matches!(error, LlmError::NotListening { .. }) && attempt >= 2 => return Err(error),
                Retry::Yes(Some(asked)) if asked > self.shared.options.max_retry_after => {
                    tracing::warn!(
                        asked_s = asked.as_secs(),
                        "the server asks to wait longer than we retry for"
                    );
                    return Err(error);
                }
                Retry::Yes(Some(asked)) => asked,
                Retry::Yes(None) => self.backoff(attempt),
            };
            tracing::info!(attempt, wait_ms = wait.as_millis() as u64, error = %error, "retrying a model call");
            deltas(Delta::Retrying {
                attempt,
                wait,
                reason: error.to_string(),
            });
            tokio::time::sleep(wait).await;
        }
    }

    /// Exponential backoff with "equal jitter": between half and all of the
    /// doubled delay, so retries from many clients spread out but never
    /// collapse to zero.
    fn backoff(&self, attempt: u32) -> Duration {
        let options = &self.shared.options;
        let doubled = options.backoff_base.saturating_mul(1 << (attempt - 1).min(16));
        let cap = doubled.min(options.backoff_max);
        cap / 2 + cap.mul_f64(fastrand::f64() / 2.0)
    }

    fn check_breaker(&self) -> Result<()> {
        let mut breaker = self.lock_breaker();
        breaker.admit(Instant::now()).map_err(|retry_in| LlmError::CircuitOpen {
            provider: self.shared.provider.kind().to_string(),
            failures: breaker.failures,
            retry_in,
        })
    }

    fn lock_breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.shared.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a finished call: cost, recording, observer and usage line
    /// (handed to their writers; [`Self::flush_usage`] waits for usage).
    fn completed(
        &self,
        request: &ChatRequest,
        response: ChatResponse,
        attempts: u32,
        duration: Duration,
        session: &str,
    ) -> Completion {
        let model = if response.model.is_empty() {
            &request.model
        } else {
            &response.model
        };
        let cost_usd = self.cost(&request.model, model, &response.usage);
        if let Some(recorder) = &self.recorder
            && let Err(e) = recorder.record(self.shared.provider.kind(), &response)
        {
            tracing::error!(error = %e, "cannot write the recording");
        }
        if let Some(observer) = &self.usage_observer {
            observer(model, &response.usage, cost_usd);
        }
        if let Some(log) = &self.usage_log {
            let line = UsageLine {
                time: crate::audit::now(),
                session,
                provider: self.shared.provider.kind().to_string(),
                model,
                usage: response.usage,
                cost_usd,
                attempts,
                duration_ms: duration.as_millis() as u64,
            };
            if let Err(e) = log.append(&line) {
                tracing::error!(error = %e, "cannot write usage.jsonl");
            }
        }
        Completion {
            response,
            cost_usd,
            attempts,
            duration,
        }
    }
}

/// One line of `usage.jsonl`.
#[derive(Serialize)]
struct UsageLine<'a> {
    time: String,
    session: &'a str,
    provider: String,
    model: &'a str,
    #[serde(flatten)]
    usage: Usage,
    cost_usd: Option<f64>,
    attempts: u32,
    duration_ms: u64,
}

/// Closed → (threshold failures) → open → (cooldown) → half-open: one trial
/// call; its success closes the breaker, its failure opens it again.
#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
    trial_in_flight: bool,
}

impl Breaker {
    /// `Err(time until the next trial)` while calls must fail fast.
    fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        match self.open_until {
            None => Ok(()),
            Some(until) if now < until => Err(until - now),
            Some(_) if self.trial_in_flight => Err(Duration::ZERO),
            Some(_) => {
                self.trial_in_flight = true;
                Ok(())
            }
        }
    }

    fn succeeded(&mut self) {
        *self = Breaker::default();
    }

    fn failed(&mut self, error: &LlmError, options: &GatewayOptions) {
        self.trial_in_flight = false;
        if !error.counts_as_outage() {
            return;
        }
        self.failures += 1;
        if self.failures >= options.breaker_threshold || self.open_until.is_some() {
            self.open_until = Some(Instant::now() + options.breaker_cooldown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outage() -> LlmError {
        LlmError::Connect {
            url: "u".into(),
            message: "refused".into(),
        }
    }

    #[test]
    fn the_breaker_opens_after_the_threshold_and_half_opens_after_the_cooldown() {
        let options = GatewayOptions {
            breaker_threshold: 2,
            breaker_cooldown: Duration::from_millis(50),
            ..GatewayOptions::default()
        };
        let mut breaker = Breaker::default();
        let now = Instant::now();
        breaker.failed(&outage(), &options);
        assert!(breaker.admit(now).is_ok(), "one failure keeps it closed");
        breaker.failed(&outage(), &options);
        assert!(breaker.admit(Instant::now()).is_err(), "two failures open it");
        let later = Instant::now() + Duration::from_millis(60);
        assert!(
            breaker.admit(later).is_ok(),
            "after the cooldown one trial goes through"
        );
        assert!(breaker.admit(later).is_err(), "but only one");
        breaker.failed(&outage(), &options);
        assert!(breaker.admit(Instant::now()).is_err(), "a failed trial opens it again");
        breaker.succeeded();
        assert!(breaker.admit(Instant::now()).is_ok(), "a success closes it");
    }

    #[test]
    fn a_bad_request_does_not_count_against_the_provider() {
        let mut breaker = Breaker::default();
        let options = GatewayOptions {
            breaker_threshold: 1,
            ..GatewayOptions::default()
        };
        let bad = LlmError::Status {
            provider: "p".into(),
            status: 400,
            kind: "invalid_request_error".into(),
            code: String::new(),
            message: "bad".into(),
            retry_after: None,
            should_retry: None,
        };
        breaker.failed(&bad, &options);
        assert!(breaker.admit(Instant::now()).is_ok());
    }
}
