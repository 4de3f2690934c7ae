//! Writing the ledger: one row per LLM API call and the daily rollup, in one transaction.

use botfleet_llm::{Attempt, Outcome, Usage};
use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

use std::collections::BTreeMap;

use super::pricing::{Cost, CostOverflow, PriceTable};
use super::rates::Rates;
use super::{CallContext, MoneyError, period::day_key};
use crate::db::SqlContext;
use crate::db::{AnyQuery, Db, to_millis};
use crate::metrics::{CostLabels, Metrics, RequestLabels, TokenLabels, model_labels};

/// One attempt with its price, ready to be written and observed.
#[derive(Clone, Debug)]
pub(crate) struct PricedAttempt<'a> {
    pub attempt: &'a Attempt,
    pub cost: Cost,
}

pub(crate) fn price_attempts<'a>(
    prices: &PriceTable,
    attempts: &'a [Attempt],
) -> Result<Vec<PricedAttempt<'a>>, MoneyError> {
    attempts
        .iter()
        .map(|attempt| {
            Ok(PricedAttempt {
                attempt,
                cost: prices.cost(&attempt.model, &attempt.usage)?,
            })
        })
        .collect()
}

/// Token counts as the database stores them (BIGINT).
fn tokens(n: u64) -> Result<i64, MoneyError> {
    i64::try_from(n).map_err(|_| MoneyError::TokensOutOfRange(n))
}

/// Binds the token counts of `usage` in the order both tables keep them: input, cache read,
/// cache write 5m, cache write 1h, output.
fn bind_tokens(mut query: AnyQuery, usage: &Usage) -> Result<AnyQuery, MoneyError> {
    for n in [
        usage.input_tokens,
        usage.cache_read_tokens,
        usage.cache_write_5m_tokens,
        usage.cache_write_1h_tokens,
        usage.output_tokens,
    ] {
        query = query.bind(tokens(n)?);
    }
    Ok(query)
}

const INSERT_LEDGER: &str = "INSERT INTO llm_ledger (at, chat_id, update_id, model, request_type, outcome, \
     http_status, input_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, \
     output_tokens, cost_nanos, priced, input_rate, cache_read_rate, cache_write_5m_rate, \
     cache_write_1h_rate, output_rate, long_prompt, latency_ms) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)";

const UPSERT_ROLLUP: &str = "INSERT INTO llm_usage_daily (day, model, request_type, requests, errors, \
     input_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, output_tokens, \
     cost_nanos, unpriced_calls, cache_saved_nanos) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
     ON CONFLICT (day, model, request_type) DO UPDATE SET \
     requests = llm_usage_daily.requests + excluded.requests, \
     errors = llm_usage_daily.errors + excluded.errors, \
     input_tokens = llm_usage_daily.input_tokens + excluded.input_tokens, \
     cache_read_tokens = llm_usage_daily.cache_read_tokens + excluded.cache_read_tokens, \
     cache_write_5m_tokens = llm_usage_daily.cache_write_5m_tokens + excluded.cache_write_5m_tokens, \
     cache_write_1h_tokens = llm_usage_daily.cache_write_1h_tokens + excluded.cache_write_1h_tokens, \
     output_tokens = llm_usage_daily.output_tokens + excluded.output_tokens, \
     cost_nanos = llm_usage_daily.cost_nanos + excluded.cost_nanos, \
     unpriced_calls = llm_usage_daily.unpriced_calls + excluded.unpriced_calls, \
     cache_saved_nanos = llm_usage_daily.cache_saved_nanos + excluded.cache_saved_nanos";

/// What one call adds to one model's rollup row.
#[derive(Default)]
struct RollupIncrement {
    requests: i64,
    errors: i64,
    tokens: Usage,
    cost_nanos: i64,
    unpriced: i64,
    cache_saved_nanos: i64,
}

fn rollup_increments<'a>(
    priced: &'a [PricedAttempt<'_>],
) -> Result<BTreeMap<&'a str, RollupIncrement>, MoneyError> {
    let mut by_model: BTreeMap<&str, RollupIncrement> = BTreeMap::new();
    for PricedAttempt { attempt, cost } in priced {
        let t = by_model.entry(attempt.model.as_str()).or_default();
        let u = &attempt.usage;
        t.requests += 1;
        t.errors += i64::from(attempt.outcome != Outcome::Ok);
        let sum = &mut t.tokens;
        sum.input_tokens = sum.input_tokens.saturating_add(u.input_tokens);
        sum.cache_read_tokens = sum.cache_read_tokens.saturating_add(u.cache_read_tokens);
        sum.cache_write_5m_tokens = sum
            .cache_write_5m_tokens
            .saturating_add(u.cache_write_5m_tokens);
        sum.cache_write_1h_tokens = sum
            .cache_write_1h_tokens
            .saturating_add(u.cache_write_1h_tokens);
        sum.output_tokens = sum.output_tokens.saturating_add(u.output_tokens);
        t.cost_nanos = t
            .cost_nanos
            .checked_add(cost.nanos())
            .ok_or_else(|| CostOverflow {
                model: attempt.model.clone(),
            })?;
        t.unpriced += i64::from(*cost == Cost::Unpriced);
        t.cache_saved_nanos = t
            .cache_saved_nanos
            .checked_add(cost.cache_saved_nanos(u).ok_or_else(|| CostOverflow {
                model: attempt.model.clone(),
            })?)
            .ok_or_else(|| CostOverflow {
                model: attempt.model.clone(),
            })?;
    }
    Ok(by_model)
}

/// One row of `llm_ledger`, in the order of [`INSERT_LEDGER`]'s columns.
struct LedgerRow<'a> {
    at_ms: i64,
    call: &'a CallContext,
    model: &'a str,
    outcome: &'a str,
    http_status: Option<i32>,
    usage: Usage,
    cost_nanos: i64,
    priced: bool,
    rates: Option<Rates>,
    long_prompt: bool,
    latency_ms: i64,
}

impl LedgerRow<'_> {
    async fn insert(&self, conn: &mut AnyConnection) -> Result<(), MoneyError> {
        let rate = |f: fn(&Rates) -> i64| self.rates.as_ref().map(f);
        let query = sqlx::query(INSERT_LEDGER)
            .bind(self.at_ms)
            .bind(self.call.chat_id)
            .bind(self.call.update_id)
            .bind(self.model)
            .bind(self.call.request_type.as_str())
            .bind(self.outcome)
            .bind(self.http_status);
        bind_tokens(query, &self.usage)?
            .bind(self.cost_nanos)
            .bind(i32::from(self.priced))
            .bind(rate(|r| r.input))
            .bind(rate(|r| r.cache_read))
            .bind(rate(|r| r.cache_write_5m))
            .bind(rate(|r| r.cache_write_1h))
            .bind(rate(|r| r.output))
            .bind(i32::from(self.long_prompt))
            .bind(self.latency_ms)
            .execute(conn)
            .await
            .ctx("writing a ledger row")?;
        Ok(())
    }
}

impl RollupIncrement {
    /// Adds this increment to the rollup row of (`day`, `model`, `request_type`).
    async fn upsert(
        &self,
        conn: &mut AnyConnection,
        day: &str,
        model: &str,
        request_type: &str,
    ) -> Result<(), MoneyError> {
        let query = sqlx::query(UPSERT_ROLLUP)
            .bind(day)
            .bind(model)
            .bind(request_type)
            .bind(self.requests)
            .bind(self.errors);
        bind_tokens(query, &self.tokens)?
            .bind(self.cost_nanos)
            .bind(self.unpriced)
            .bind(self.cache_saved_nanos)
            .execute(conn)
            .await
            .ctx("updating the daily usage rollup")?;
        Ok(())
    }
}

/// Writes every attempt and its rollup increment in one transaction: either all of a call's
/// attempts are on the books, or none.
pub(crate) async fn write(
    db: &Db,
    call: &CallContext,
    priced: &[PricedAttempt<'_>],
    at: DateTime<Utc>,
    reservation: Option<i64>,
) -> Result<(), MoneyError> {
    if priced.is_empty() {
        if let Some(id) = reservation {
            let mut conn = db.pool.acquire().await.ctx("releasing a reservation")?;
            super::reserve::release(&mut conn, id).await?;
        }
        return Ok(());
    }
    let at_ms = to_millis(at);
    let day = day_key(at.date_naive());
    let request_type = call.request_type.as_str();
    let mut tx = db
        .pool
        .begin()
        .await
        .ctx("starting the ledger transaction")?;
    for PricedAttempt { attempt, cost } in priced {
        let (rates, priced, long_prompt) = match cost {
            Cost::Priced {
                rates, long_prompt, ..
            } => (Some(*rates), true, *long_prompt),
            Cost::Unpriced => (None, false, false),
        };
        LedgerRow {
            at_ms,
            call,
            model: attempt.model.as_str(),
            outcome: attempt.outcome.as_str(),
            http_status: attempt.status.map(i32::from),
            usage: attempt.usage,
            cost_nanos: cost.nanos(),
            priced,
            rates,
            long_prompt,
            latency_ms: i64::try_from(attempt.latency.as_millis()).unwrap_or(i64::MAX),
        }
        .insert(&mut tx)
        .await?;
    }
    // One rollup upsert per model of the call (usually one), not one per attempt.
    for (model, t) in rollup_increments(priced)? {
        t.upsert(&mut tx, day.as_str(), model, request_type).await?;
    }
    if let Some(id) = reservation {
        super::reserve::release(&mut tx, id).await?;
    }
    tx.commit().await.ctx("committing the ledger transaction")?;
    Ok(())
}

/// The ledger `outcome` of an answer served from the response cache (no API call).
pub(crate) const RESPONSE_CACHE_OUTCOME: &str = "response_cache";

/// One ledger row for a response-cache hit (zero tokens, zero cost, priced) and its rollup
/// request, in one transaction.
pub(crate) async fn write_response_cache_hit(
    db: &Db,
    call: &CallContext,
    model: &str,
    at: DateTime<Utc>,
) -> Result<(), MoneyError> {
    let mut tx = db
        .pool
        .begin()
        .await
        .ctx("starting the ledger transaction")?;
    LedgerRow {
        at_ms: to_millis(at),
        call,
        model,
        outcome: RESPONSE_CACHE_OUTCOME,
        http_status: None,
        usage: Usage::default(),
        cost_nanos: 0,
        priced: true,
        rates: None,
        long_prompt: false,
        latency_ms: 0,
    }
    .insert(&mut tx)
    .await?;
    let request = RollupIncrement {
        requests: 1,
        ..RollupIncrement::default()
    };
    request
        .upsert(
            &mut tx,
            day_key(at.date_naive()).as_str(),
            model,
            call.request_type.as_str(),
        )
        .await?;
    tx.commit().await.ctx("committing the ledger transaction")?;
    Ok(())
}

/// Counts the written attempts in the Prometheus metrics. Float USD is for dashboards only;
/// the exact amounts are in the ledger.
pub(crate) fn observe(metrics: &Metrics, call: &CallContext, priced: &[PricedAttempt<'_>]) {
    let request_type = call.request_type.as_str();
    for PricedAttempt { attempt, cost } in priced {
        let model = attempt.model.as_str();
        metrics
            .llm_requests
            .get_or_create(&RequestLabels {
                model: model.to_owned(),
                request_type: request_type.to_owned(),
                outcome: attempt.outcome.as_str().to_owned(),
            })
            .inc();
        metrics
            .llm_request_duration
            .get_or_create(&model_labels(model))
            .observe(attempt.latency.as_secs_f64());
        let usage = &attempt.usage;
        for (token_type, n) in [
            ("input", usage.input_tokens),
            ("cache_read", usage.cache_read_tokens),
            ("cache_write_5m", usage.cache_write_5m_tokens),
            ("cache_write_1h", usage.cache_write_1h_tokens),
            ("output", usage.output_tokens),
        ] {
            if n > 0 {
                metrics
                    .llm_tokens
                    .get_or_create(&TokenLabels {
                        model: model.to_owned(),
                        request_type: request_type.to_owned(),
                        token_type: token_type.to_owned(),
                    })
                    .inc_by(n);
            }
        }
        match cost {
            Cost::Priced { cost_nanos, .. } => {
                metrics
                    .llm_cost_usd
                    .get_or_create(&CostLabels {
                        model: model.to_owned(),
                        request_type: request_type.to_owned(),
                    })
                    .inc_by(nanos_to_usd_f64(*cost_nanos));
            }
            Cost::Unpriced => {
                metrics
                    .llm_unpriced_calls
                    .get_or_create(&model_labels(model))
                    .inc();
                tracing::warn!(
                    model,
                    request_type,
                    "LLM call to a model with no configured price: its cost is unknown (add it to `pricing`)"
                );
            }
        }
    }
}

/// USD as a float, for Prometheus only.
pub(crate) fn nanos_to_usd_f64(nanos: i64) -> f64 {
    nanos as f64 / botfleet_api::NANOS_PER_USD as f64
}
