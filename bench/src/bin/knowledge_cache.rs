//! What the prompt cache saves, and what the response cache answers, on the bot's real
//! conversation pipeline (history, knowledge, breakpoints, ledger) against a fake Anthropic API
//! that models the prompt cache.
//!
//! 1. Conversations: `--conversations` (50) leads of `--turns` (20) questions each, one after
//!    the other, with a `--knowledge-tokens` (20,000) knowledge base, once with
//!    `promptCacheTtl: 5m` and once with `1h`. The input cost with caching is what the ledger
//!    charged (uncached input, cache reads and writes at Sonnet's list prices); without caching
//!    it is every prompt token at the input price. Target: caching cuts input cost by ≥ 70 %.
//! 2. Repeated questions: `--leads` (500) new leads each asking one question drawn from
//!    `--questions` (30) frequently asked ones (Zipf-like: the k-th is asked ∝ 1/k), with
//!    `llm.responseCache` on: the share answered from the database without an LLM call.
//!
//! ```text
//! cargo run --release -p botfleet-bench --bin knowledge_cache
//! ```

use std::sync::Arc;

use botfleet_bench::database::{Database, Kind};
use botfleet_bench::fakes::caching_llm::CachingLlm;
use botfleet_bench::flags::{Flag, Flags};
use botfleet_bench::report::{Table, print_header};
use botfleet_bot::config::{Needs, Settings, load_config_str};
use botfleet_bot::conversation::{Format, Pipeline, Transport};
use botfleet_bot::knowledge::Knowledge;
use botfleet_bot::leads::Inbound;
use botfleet_bot::telegram::TelegramError;

const FLAGS: &[Flag] = &[
    Flag::new("conversations", "50", "leads in the conversation workload"),
    Flag::new("turns", "20", "questions per lead"),
    Flag::new(
        "knowledge-tokens",
        "20000",
        "size of the knowledge base (estimated tokens)",
    ),
    Flag::new("leads", "500", "leads in the repeated-question workload"),
    Flag::new("questions", "30", "distinct frequently asked questions"),
];

/// Sonnet 4.5 list prices, nano-USD per token.
const INPUT: i64 = 3_000;
const CACHE_READ: i64 = 300;
const CACHE_WRITE_5M: i64 = 3_750;
const CACHE_WRITE_1H: i64 = 6_000;

/// Replies go nowhere: the benchmark reads the ledger.
struct Silent;

impl Transport for Silent {
    async fn send_with_buttons(
        &self,
        _: i64,
        _: &str,
        _: Format,
        _: &[(String, String)],
    ) -> Result<(), TelegramError> {
        Ok(())
    }
    async fn typing(&self, _: i64) {}
    async fn answer_button(&self, _: &str) {}
}

/// A knowledge base of about `tokens` tokens: product sections with prices and terms.
fn knowledge_text(tokens: usize) -> String {
    let mut text = String::new();
    let mut i = 0;
    while botfleet_llm::estimate_tokens(&text) < tokens as u32 {
        text.push_str(&format!(
            "# Product {i}\nProduct {i} costs {} dollars a month, ships within {} days to the EU and the US, \
             includes {} seats and support by email and chat on weekdays from 9 to 18 CET. \
             Annual billing saves 15 percent; returns are accepted within 30 days of delivery.\n\n",
            19 + i % 80,
            1 + i % 5,
            3 + i % 20
        ));
        i += 1;
    }
    text
}

fn config(llm_url: &str, ttl: &str, response_cache: bool) -> String {
    format!(
        "llm:\n  provider: anthropic\n  model: claude-sonnet-4-5\n  baseUrl: {llm_url}\n  \
         systemPrompt: You are the sales assistant of Example Corp. Answer briefly and politely.\n  \
         streaming: false\n  historyTokens: 8000\n  knowledgeTokens: 30000\n  promptCacheTtl: {ttl}\n  \
         responseCache: {{enabled: {response_cache}, ttl: 24h}}\n\
         rateLimit: {{messages: 100000, per: 1m}}\n\
         pricing:\n  - {{model: claude-sonnet-4-5, input: \"3.00\", output: \"15.00\", cacheRead: \"0.30\", cacheWrite5m: \"3.75\", cacheWrite1h: \"6.00\"}}\n"
    )
}

async fn pipeline(config_text: &str, database_url: &str, knowledge: &str) -> Pipeline {
    let bot = load_config_str(config_text).expect("bench config");
    let env = |name: &str| match name {
        "LLM_API_KEY" => Some(botfleet_bench::fakes::llm::API_KEY.to_owned()),
        "DATABASE_URL" => Some(database_url.to_owned()),
        _ => None,
    };
    let settings = Settings::resolve(bot, &env, Needs::LlmOnly).expect("bench settings");
    let (ctx, money) = botfleet_bot::app::build_context(settings)
        .await
        .expect("bench context");
    let knowledge = Knowledge::fit(knowledge, 30_000);
    Pipeline::new(ctx, money).with_knowledge(knowledge)
}

fn inbound(update_id: i64, chat_id: i64, text: String) -> Inbound {
    Inbound {
        update_id,
        chat_id,
        user_id: Some(chat_id),
        username: None,
        first_name: None,
        text,
        private_chat: true,
    }
}

/// Token sums of the ledger: (calls, input, cache read, write 5m, write 1h).
async fn ledger_sums(pipeline: &Pipeline) -> (i64, i64, i64, i64, i64) {
    sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT), \
         CAST(COALESCE(SUM(cache_read_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(cache_write_5m_tokens), 0) AS BIGINT), \
         CAST(COALESCE(SUM(cache_write_1h_tokens), 0) AS BIGINT) FROM llm_ledger WHERE outcome = 'ok'",
    )
    .fetch_one(&pipeline.ctx.db.pool)
    .await
    .expect("ledger sums")
}

fn usd(nanos: i64) -> String {
    botfleet_api::format_usd(nanos, 2)
}

#[tokio::main]
async fn main() {
    let flags = Flags::parse("prompt cache and response cache savings", FLAGS);
    let conversations: i64 = flags.get("conversations");
    let turns: i64 = flags.get("turns");
    let knowledge_tokens: usize = flags.get("knowledge-tokens");
    let leads: i64 = flags.get("leads");
    let questions: usize = flags.get("questions");
    let knowledge = knowledge_text(knowledge_tokens);

    print_header(
        "Prompt cache: input cost of a conversation workload",
        &[
            (
                "conversations × turns",
                format!("{conversations} × {turns}"),
            ),
            (
                "knowledge",
                format!(
                    "{} tokens (estimated)",
                    botfleet_llm::estimate_tokens(&knowledge)
                ),
            ),
            (
                "prices",
                "Sonnet 4.5 list: input $3, cache read $0.30, write 5m $3.75, write 1h $6 per Mtok"
                    .into(),
            ),
            ("database", "SQLite".into()),
        ],
    );
    let mut table = Table::new([
        "promptCacheTtl",
        "calls",
        "prompt tokens",
        "cache read",
        "cache write",
        "uncached",
        "input cost without caching",
        "with caching",
        "cut",
    ]);
    for ttl in ["5m", "1h"] {
        let llm = CachingLlm::start(1024, 60).await;
        let scratch = Database::fresh(Kind::Sqlite, "")
            .await
            .expect("scratch database");
        let pipeline = pipeline(&config(&llm.url, ttl, false), &scratch.url, &knowledge).await;
        let mut update_id = 0;
        for lead in 0..conversations {
            for turn in 0..turns {
                update_id += 1;
                let text = format!(
                    "Question {turn} from lead {lead}: what does product {} cost, and how fast do you ship it?",
                    (lead * 7 + turn * 3) % 60
                );
                pipeline
                    .handle_text(&Silent, inbound(update_id, 1_000 + lead, text))
                    .await
                    .expect("handled");
            }
        }
        let (calls, input, read, w5m, w1h) = ledger_sums(&pipeline).await;
        let prompt = input + read + w5m + w1h;
        let without = prompt * INPUT;
        let with = input * INPUT + read * CACHE_READ + w5m * CACHE_WRITE_5M + w1h * CACHE_WRITE_1H;
        let cut_tenths = (without - with) * 1000 / without.max(1);
        table.row([
            ttl.to_owned(),
            calls.to_string(),
            prompt.to_string(),
            read.to_string(),
            (w5m + w1h).to_string(),
            input.to_string(),
            usd(without),
            usd(with),
            format!("{}.{} %", cut_tenths / 10, cut_tenths % 10),
        ]);
        assert_eq!(llm.requests() as i64, calls, "every call is in the ledger");
    }
    println!("{}", table.render());

    print_header(
        "Response cache: repeated first questions",
        &[
            ("leads", leads.to_string()),
            (
                "distinct questions",
                format!("{questions} (Zipf-like, the k-th asked ∝ 1/k)"),
            ),
        ],
    );
    let llm = CachingLlm::start(1024, 60).await;
    let scratch = Database::fresh(Kind::Sqlite, "")
        .await
        .expect("scratch database");
    let pipeline =
        Arc::new(pipeline(&config(&llm.url, "1h", true), &scratch.url, &knowledge).await);
    let weights: Vec<f64> = (1..=questions).map(|k| 1.0 / k as f64).collect();
    let total: f64 = weights.iter().sum();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for lead in 0..leads {
        // A small fixed-seed generator: the same workload on every run.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut pick = (state % 1_000_000) as f64 / 1_000_000.0 * total;
        let mut k = 0;
        while k + 1 < questions && pick >= weights[k] {
            pick -= weights[k];
            k += 1;
        }
        let text = format!("Frequently asked question number {k}: what does it cost?");
        pipeline
            .handle_text(&Silent, inbound(100_000 + lead, 10_000 + lead, text))
            .await
            .expect("handled");
    }
    let hits: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM llm_ledger WHERE outcome = 'response_cache'",
    )
    .fetch_one(&pipeline.ctx.db.pool)
    .await
    .expect("hits");
    let cost: i64 =
        sqlx::query_scalar("SELECT CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) FROM llm_ledger")
            .fetch_one(&pipeline.ctx.db.pool)
            .await
            .expect("cost");
    let calls = llm.requests() as i64;
    let per_call = cost / calls.max(1);
    let mut table = Table::new([
        "questions asked",
        "answered from the response cache",
        "hit rate",
        "LLM calls",
        "cost",
        "cost without the response cache (est.)",
    ]);
    table.row([
        leads.to_string(),
        hits.to_string(),
        format!("{:.1} %", hits as f64 * 100.0 / leads as f64),
        calls.to_string(),
        botfleet_api::format_usd(cost, 4),
        botfleet_api::format_usd(per_call * leads, 4),
    ]);
    println!("{}", table.render());
}
