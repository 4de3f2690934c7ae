//! The money side of the bot: every LLM call priced exactly (nano-USD integers), written to a
//! ledger with a daily rollup, budgets with alerts and a hard stop, and owner reports.
//!
//! [`MeteredLlm`] is the one road to the LLM (gate, call, ledger, metrics); [`Money`] is the
//! facade for the rest (prices, budgets, alerts, reports). All of it takes
//! `now`, so periods (UTC days and months) are under the caller's control. Budgets are read
//! from the rollup, never from memory: a restart or another replica sees the same spend.

mod budget;
mod ledger;
pub mod list_prices;
mod metered;
mod notices;
mod period;
mod pricing;
mod rates;
mod reports;
mod reserve;
mod stats;
mod top_leads;
mod usage_api;
mod worst_case;

use chrono::{DateTime, NaiveDate, Utc};

use crate::db::{Db, SqlError};
use crate::delivery::Delivery;
use crate::metrics::{Metrics, RequestLabels};
use botfleet_api::{BotConfig, ConfigError, LlmProvider, UsdAmount};

pub use budget::{BudgetLimits, SentAlert, Spend, percent_of, reached};
pub use metered::{CallSpec, Metered, MeteredLlm, Permit};
pub use period::{Period, day_key, day_start_millis, window_first_day};
pub use pricing::{Cost, CostOverflow, PriceTable};
pub use rates::{LongPromptRates, ModelRates, Rates};
pub use reports::{LeadCounts, LeadStats, render_budget, render_lead_stats};
pub use stats::{
    DailyWindow, LlmStats, RollupRow, UsageTotals, WindowStats, group, render_llm_stats,
    render_top_leads, render_window_html,
};
pub use top_leads::{LeadSpend, TOP_LEADS};
pub use usage_api::UsageSummary;

/// What the bot answers instead of calling the LLM once a budget with `hardStop` is spent.
pub const BUDGET_STOPPED_REPLY: &str = "Sorry, I can't answer right now. \
     Please try again a bit later — we'll get back to you as soon as we can.";

/// What a lead is told instead of an answer once its own limit (`budget.perLead`) is spent.
pub const LEAD_LIMIT_REPLY: &str = "Thank you for all your questions! You have reached \
     today's limit of answers for one conversation. Please come back later — \
     we'll be glad to continue then.";

/// Why a call was not made: the limit its worst-case cost did not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The bot's own daily or monthly limit (`hardStop`).
    Bot(Period),
    /// The lead's own limit (`budget.perLead`).
    Lead(Period),
}

impl Refusal {
    pub fn period(self) -> Period {
        match self {
            Refusal::Bot(period) | Refusal::Lead(period) => period,
        }
    }

    /// `bot` or `lead`, as `budget_refusals` stores it.
    pub fn scope(self) -> &'static str {
        match self {
            Refusal::Bot(_) => "bot",
            Refusal::Lead(_) => "lead",
        }
    }

    /// What the lead is told instead of an answer.
    pub fn reply(self) -> &'static str {
        match self {
            Refusal::Bot(_) => BUDGET_STOPPED_REPLY,
            Refusal::Lead(_) => LEAD_LIMIT_REPLY,
        }
    }
}

/// The `outcome` label counted when the budget gate refuses a call.
pub const BUDGET_REFUSED_OUTCOME: &str = "budget_refused";

#[derive(Debug, thiserror::Error)]
pub enum MoneyError {
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(transparent)]
    CostOverflow(#[from] CostOverflow),
    #[error("a token count of {0} does not fit the ledger's 64-bit columns")]
    TokensOutOfRange(u64),
}

/// Why the LLM was called; the `request_type` label and ledger column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestType {
    /// Answering a user's message.
    Chat,
    /// Writing a follow-up to a quiet lead.
    Followup,
    /// Summarising a long conversation.
    Summary,
    /// Writing the suggested questions of the welcome's buttons.
    Suggestions,
    /// Answering a user's message with their document in the prompt.
    Document,
    /// Classifying a lead's message (intent and topic) for the support desk.
    Classification,
}

impl RequestType {
    pub const ALL: [RequestType; 6] = [
        RequestType::Chat,
        RequestType::Followup,
        RequestType::Summary,
        RequestType::Suggestions,
        RequestType::Document,
        RequestType::Classification,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestType::Chat => "chat",
            RequestType::Followup => "followup",
            RequestType::Summary => "summary",
            RequestType::Suggestions => "suggestions",
            RequestType::Document => "document",
            RequestType::Classification => "classification",
        }
    }
}

/// Who and what an LLM call was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallContext {
    pub chat_id: Option<i64>,
    pub update_id: Option<i64>,
    pub request_type: RequestType,
}

/// The answer of the budget gate before an LLM call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BudgetGate {
    Open,
    /// `hardStop` is on and this period's limit is reached: make no call, answer
    /// [`BUDGET_STOPPED_REPLY`].
    Stopped {
        period: Period,
    },
}

/// Prices, budgets and owners of one bot.
#[derive(Clone, Debug)]
pub struct Money {
    prices: PriceTable,
    limits: BudgetLimits,
    owners: Vec<i64>,
    /// The LLM provider: an unpriced model is reserved at its dearest known rates.
    provider: LlmProvider,
}

impl Money {
    /// Reads `pricing`, `budget` and `owners`. A price or limit that cannot be held exactly
    /// fails with its field named (`pricing[2].cacheRead`, `budget.daily`).
    pub fn from_config(config: &BotConfig) -> Result<Self, ConfigError> {
        let prices = PriceTable::new(&config.pricing)?;
        let limits = match &config.budget {
            None => BudgetLimits::default(),
            Some(budget) => {
                let mut thresholds = budget.alert_thresholds();
                if let Some(i) = thresholds.iter().position(|&t| t == 0) {
                    return Err(ConfigError::new(
                        format!("budget.alertThresholds[{i}]"),
                        "must be a percentage of at least 1",
                    ));
                }
                thresholds.sort_unstable();
                thresholds.dedup();
                BudgetLimits {
                    daily_nanos: budget.daily.as_ref().map(UsdAmount::nanos),
                    monthly_nanos: budget.monthly.as_ref().map(UsdAmount::nanos),
                    alert_thresholds: thresholds,
                    hard_stop: budget.hard_stop(),
                    lead_daily_nanos: budget
                        .per_lead
                        .as_ref()
                        .and_then(|l| l.daily.as_ref().map(UsdAmount::nanos)),
                    lead_monthly_nanos: budget
                        .per_lead
                        .as_ref()
                        .and_then(|l| l.monthly.as_ref().map(UsdAmount::nanos)),
                }
            }
        };
        Ok(Self::new(
            prices,
            limits,
            config.owners.clone(),
            config.llm.provider,
        ))
    }

    pub fn new(
        prices: PriceTable,
        limits: BudgetLimits,
        owners: Vec<i64>,
        provider: LlmProvider,
    ) -> Self {
        Self {
            prices,
            limits,
            owners,
            provider,
        }
    }

    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }

    pub fn limits(&self) -> &BudgetLimits {
        &self.limits
    }

    pub fn provider(&self) -> LlmProvider {
        self.provider
    }

    pub fn is_owner(&self, user_id: i64) -> bool {
        self.owners.contains(&user_id)
    }

    /// Writes one ledger row per attempt (failed ones too) and their rollup increments in one
    /// transaction, then updates the metrics. Returns the call's total cost in nano-USD
    /// (unpriced attempts count as 0 here and are counted separately).
    pub async fn record_call(
        &self,
        db: &Db,
        metrics: &Metrics,
        call: CallContext,
        attempts: &[botfleet_llm::Attempt],
        at: DateTime<Utc>,
    ) -> Result<i64, MoneyError> {
        self.settle_call(db, metrics, call, attempts, at, None)
            .await
    }

    /// [`Money::record_call`] that also deletes the call's reservation, in the ledger's
    /// transaction: the worst case held is replaced by the exact cost at once.
    pub(crate) async fn settle_call(
        &self,
        db: &Db,
        metrics: &Metrics,
        call: CallContext,
        attempts: &[botfleet_llm::Attempt],
        at: DateTime<Utc>,
        reservation: Option<i64>,
    ) -> Result<i64, MoneyError> {
        let priced = ledger::price_attempts(&self.prices, attempts)?;
        ledger::write(db, &call, &priced, at, reservation).await?;
        ledger::observe(metrics, &call, &priced);
        priced
            .iter()
            .try_fold(0_i64, |total, p| total.checked_add(p.cost.nanos()))
            .ok_or_else(|| {
                MoneyError::CostOverflow(CostOverflow {
                    model: attempts
                        .first()
                        .map(|a| a.model.clone())
                        .unwrap_or_default(),
                })
            })
    }

    /// Records an answer served from the response cache: one ledger row with outcome
    /// `response_cache`, no tokens and zero cost, counted as a request in the rollup.
    pub async fn record_response_cache_hit(
        &self,
        db: &Db,
        metrics: &Metrics,
        call: CallContext,
        model: &str,
        at: DateTime<Utc>,
    ) -> Result<(), MoneyError> {
        ledger::write_response_cache_hit(db, &call, model, at).await?;
        metrics.response_cache_hits.inc();
        metrics
            .llm_requests
            .get_or_create(&RequestLabels {
                model: model.to_owned(),
                request_type: call.request_type.as_str().to_owned(),
                outcome: ledger::RESPONSE_CACHE_OUTCOME.to_owned(),
            })
            .inc();
        Ok(())
    }

    /// Counts a call the gate refused (`llm_requests_total{outcome="budget_refused"}`). No
    /// ledger row: nothing was sent to the API.
    pub fn record_refusal(&self, metrics: &Metrics, model: &str, request_type: RequestType) {
        metrics
            .llm_requests
            .get_or_create(&RequestLabels {
                model: model.to_owned(),
                request_type: request_type.as_str().to_owned(),
                outcome: BUDGET_REFUSED_OUTCOME.to_owned(),
            })
            .inc();
    }

    /// Before an LLM call: `Open`, or `Stopped { period }` when `hardStop` is on and the
    /// daily or monthly limit is reached.
    pub async fn gate(&self, db: &Db, now: DateTime<Utc>) -> Result<BudgetGate, MoneyError> {
        if !self.limits.hard_stop
            || (self.limits.daily_nanos.is_none() && self.limits.monthly_nanos.is_none())
        {
            return Ok(BudgetGate::Open);
        }
        let spend = budget::current_spend(db, now).await?;
        Ok(self.gate_for(&spend))
    }

    fn gate_for(&self, spend: &Spend) -> BudgetGate {
        match budget::exhausted(&self.limits, spend) {
            Some(period) if self.limits.hard_stop => BudgetGate::Stopped { period },
            _ => BudgetGate::Open,
        }
    }

    /// Sends owners the threshold alerts not yet sent this period (each owner, threshold and
    /// period at most once, durably), and the notices of refused reservations (each owner,
    /// period and scope — each lead for `perLead` — at most once, durably). Called after each call and by the scheduler every tick.
    pub async fn check_alerts(
        &self,
        db: &Db,
        delivery: &Delivery,
        now: DateTime<Utc>,
    ) -> Result<Vec<SentAlert>, MoneyError> {
        let sent = budget::send_due_alerts(db, delivery, &self.limits, &self.owners, now).await?;
        notices::send_due(db, delivery, &self.limits, &self.owners, now).await?;
        Ok(sent)
    }

    /// Sets `llm_spend_usd{period}` from the rollup and `llm_budget_usd{period}` from config.
    pub async fn refresh_gauges(
        &self,
        db: &Db,
        metrics: &Metrics,
        now: DateTime<Utc>,
    ) -> Result<(), MoneyError> {
        let spend = budget::current_spend(db, now).await?;
        for period in Period::ALL {
            let labels = crate::metrics::PeriodLabels {
                period: period.as_str().to_owned(),
            };
            metrics
                .llm_spend_usd
                .get_or_create(&labels)
                .set(ledger::nanos_to_usd_f64(spend.of(period)));
            if let Some(limit) = self.limits.limit(period) {
                metrics
                    .llm_budget_usd
                    .get_or_create(&labels)
                    .set(ledger::nanos_to_usd_f64(limit));
            }
        }
        Ok(())
    }

    /// Today's and this month's spend as read from the rollup.
    pub async fn spend(&self, db: &Db, now: DateTime<Utc>) -> Result<Spend, MoneyError> {
        budget::current_spend(db, now).await
    }

    /// The body of `GET /api/v1/usage`.
    pub async fn usage_summary(
        &self,
        db: &Db,
        now: DateTime<Utc>,
    ) -> Result<UsageSummary, MoneyError> {
        let spend = budget::current_spend(db, now).await?;
        Ok(UsageSummary {
            day: Period::Day.key(now),
            month: Period::Month.key(now),
            spend_today_nanos: spend.day_nanos,
            spend_today_usd: usage_api::usd_plain(spend.day_nanos),
            spend_month_nanos: spend.month_nanos,
            spend_month_usd: usage_api::usd_plain(spend.month_nanos),
            budget_daily_nanos: self.limits.daily_nanos,
            budget_monthly_nanos: self.limits.monthly_nanos,
            requests_today: spend.requests_today,
            unpriced_calls_today: spend.unpriced_calls_today,
            hard_stopped: matches!(self.gate_for(&spend), BudgetGate::Stopped { .. }),
            top_leads: self.top_leads(db, now).await?,
        })
    }

    /// The daily rollup's rows of `first_day` to `last_day` (inclusive), by day, model and
    /// request type.
    pub async fn rollup(
        &self,
        db: &Db,
        first_day: NaiveDate,
        last_day: NaiveDate,
    ) -> Result<Vec<RollupRow>, MoneyError> {
        stats::rollup(db, first_day, last_day).await
    }

    /// The numbers behind `/llm_stats`.
    pub async fn llm_stats(&self, db: &Db, now: DateTime<Utc>) -> Result<LlmStats, MoneyError> {
        let mut stats = stats::llm_stats(db, now).await?;
        stats.top_leads = self.top_leads(db, now).await?;
        Ok(stats)
    }

    /// The leads that cost the most this month (`/llm_stats`, the usage API, the dashboard).
    pub async fn top_leads(
        &self,
        db: &Db,
        now: DateTime<Utc>,
    ) -> Result<Vec<LeadSpend>, MoneyError> {
        top_leads::top_leads(db, now).await
    }

    /// `/llm_stats` as Telegram HTML.
    pub async fn report_llm_stats(
        &self,
        db: &Db,
        now: DateTime<Utc>,
    ) -> Result<String, MoneyError> {
        Ok(render_llm_stats(&self.llm_stats(db, now).await?))
    }

    /// The numbers behind `/stats`.
    pub async fn lead_stats(&self, db: &Db, now: DateTime<Utc>) -> Result<LeadStats, MoneyError> {
        reports::lead_stats(db, now).await
    }

    /// `/llm_stats`'s sums over `first_day` to `last_day` (inclusive), and each day's totals.
    pub async fn daily_window(
        &self,
        db: &Db,
        first_day: NaiveDate,
        last_day: NaiveDate,
    ) -> Result<DailyWindow, MoneyError> {
        stats::daily_window(db, first_day, last_day).await
    }

    /// Leads counted in `[from_ms, until_ms)`, as `/stats` counts them.
    pub async fn lead_counts(
        &self,
        db: &Db,
        from_ms: i64,
        until_ms: i64,
    ) -> Result<LeadCounts, MoneyError> {
        reports::lead_counts(db, from_ms, until_ms).await
    }

    /// `/stats` as Telegram HTML.
    pub async fn report_stats(&self, db: &Db, now: DateTime<Utc>) -> Result<String, MoneyError> {
        Ok(render_lead_stats(&self.lead_stats(db, now).await?))
    }

    /// `/budget` as Telegram HTML.
    pub async fn report_budget(&self, db: &Db, now: DateTime<Utc>) -> Result<String, MoneyError> {
        let spend = budget::current_spend(db, now).await?;
        Ok(render_budget(&self.limits, &spend, now))
    }
}
