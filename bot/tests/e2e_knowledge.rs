//! Owner knowledge and the prompt cache end to end: knowledge from a mounted ConfigMap key and
//! inline text reaches the system prompt within `llm.knowledgeTokens` (cut at a section, with
//! a warning and a metric); requests carry cache breakpoints on the stable prefix and on the
//! conversation so far; the fake LLM, modelling Anthropic's cache, reports cache reads; and
//! `/llm_stats` shows what the cache saved, equal to a hand computation. Both databases.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::fake_telegram::text_update;
use support::{BotConfigOptions, BotProcess, Harness, TestDb, eventually};

const WAIT: Duration = Duration::from_secs(20);
const CHAT: i64 = 4343;

async fn reply(h: &Harness, bot: &BotProcess, update: &Value, count: usize) -> String {
    assert_eq!(bot.post_update(update).await, 200);
    eventually(WAIT, "the bot's reply", || {
        h.telegram.sent_texts(CHAT).len() >= count
    })
    .await;
    h.telegram.sent_texts(CHAT)[count - 1].clone()
}

fn system_texts(request: &Value) -> Vec<String> {
    request["system"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| b["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn configmap_and_inline_knowledge_reach_the_prompt_cut_at_a_section(db: TestDb) {
    let knowledge_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(knowledge_dir.path().join("acme-knowledge")).unwrap();
    std::fs::write(
        knowledge_dir.path().join("acme-knowledge/prices.md"),
        "# Prices\nThe Pro plan costs 49 dollars a month.\n\n# Shipping\nEU orders arrive in 3 days.\n",
    )
    .unwrap();
    let archive = format!("# Archive\n{}", vec!["old price list"; 600].join(" "));
    let h = Harness::new(
        db,
        BotConfigOptions {
            llm_yaml: "  streaming: false\n  knowledgeTokens: 200\n".into(),
            extra_yaml: format!(
                "knowledge:\n  - configMapKeyRef: {{name: acme-knowledge, key: prices.md}}\n  - inline: {archive:?}\n"
            ),
            ..Default::default()
        },
    )
    .await
    .env(
        "BOTFLEET_KNOWLEDGE_DIR",
        knowledge_dir.path().to_str().unwrap(),
    );
    let bot = h.start().await;
    reply(&h, &bot, &text_update(1, CHAT, "What does Pro cost?"), 1).await;

    let request = h.llm.requests().pop().unwrap();
    let system = system_texts(&request);
    assert_eq!(system.len(), 2, "{system:?}");
    assert_eq!(system[0], "You are a test bot.");
    assert!(
        system[1].contains("# Prices\nThe Pro plan costs 49 dollars a month."),
        "{system:?}"
    );
    assert!(system[1].contains("EU orders arrive in 3 days."));
    // The archive does not fit the 200 tokens: left out whole, said at start, counted.
    assert!(!system[1].contains("Archive"), "{system:?}");
    assert!(
        bot.log()
            .contains("knowledge does not fit llm.knowledgeTokens")
    );
    assert!(bot.log().contains("# Archive"));
    let metrics = bot.metrics_text().await;
    let gauge = |state: &str| -> i64 {
        let prefix = format!("botfleet_knowledge_tokens{{state=\"{state}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("{prefix} not in {metrics}"))
            .parse()
            .unwrap()
    };
    assert!(gauge("loaded") > 0 && gauge("loaded") <= 200);
    assert!(gauge("cut") >= 1000, "the archive is ~1,300 tokens");
}
for_each_db!(configmap_and_inline_knowledge_reach_the_prompt_cut_at_a_section);

/// Ledger rows of the chat calls: (cache_read, cache_write_1h, cache_write_5m, input).
async fn ledger_tokens(h: &Harness) -> Vec<(i64, i64, i64, i64)> {
    let db = h.db.reconnect().await;
    sqlx::query_as(
        "SELECT cache_read_tokens, cache_write_1h_tokens, cache_write_5m_tokens, input_tokens \
         FROM llm_ledger WHERE request_type = 'chat' ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

async fn cache_breakpoints_cut_the_bill_and_llm_stats_shows_the_saving(db: TestDb) {
    let knowledge = format!(
        "# Catalogue\n{}",
        vec!["item costs ten dollars"; 1500].join(". ")
    );
    let h = Harness::new(
        db,
        BotConfigOptions {
            llm_yaml: "  streaming: false\n  promptCacheTtl: 1h\n".into(),
            pricing: Some(
                "{model: claude-test, input: \"3.00\", output: \"15.00\", cacheRead: \"0.30\", cacheWrite5m: \"3.75\", cacheWrite1h: \"6.00\"}".into(),
            ),
            extra_yaml: format!("owners: [{CHAT}]\nknowledge:\n  - inline: {knowledge:?}\n"),
            ..Default::default()
        },
    )
    .await;
    h.llm.model_prompt_cache(1024);
    let bot = h.start().await;
    for (i, question) in ["Hi!", "What does an item cost?", "And two items?"]
        .iter()
        .enumerate()
    {
        reply(&h, &bot, &text_update(i as i64 + 1, CHAT, question), i + 1).await;
    }

    // The breakpoints in the request bodies.
    let requests = h.llm.requests();
    assert_eq!(requests.len(), 3);
    for (i, request) in requests.iter().enumerate() {
        let blocks = request["system"].as_array().unwrap();
        assert_eq!(blocks.len(), 2);
        for block in blocks {
            assert_eq!(
                block["cache_control"],
                serde_json::json!({"type": "ephemeral", "ttl": "1h"})
            );
        }
        let messages = request["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 2 * i + 1);
        let marks = request.to_string().matches("cache_control").count();
        if i == 0 {
            assert_eq!(marks, 2, "nothing before the first question");
        } else {
            // The answer before the new question carries the conversation's breakpoint.
            let before = &messages[messages.len() - 2];
            assert_eq!(before["role"], "assistant");
            assert_eq!(
                before["content"][0]["cache_control"],
                serde_json::json!({"type": "ephemeral"})
            );
            assert_eq!(marks, 3);
        }
        assert!(marks <= 4);
    }

    // The first call writes the prefix for an hour, the next ones read it.
    let rows = ledger_tokens(&h).await;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].0, 0);
    assert!(rows[0].1 > 5000, "{rows:?}");
    for row in &rows[1..] {
        assert!(row.0 >= rows[0].1, "reads at least the knowledge: {rows:?}");
    }

    // Saved = cache-read tokens × (input − cache read price), 3,000 − 300 nano-USD a token.
    let read: i64 = rows.iter().map(|r| r.0).sum();
    let saved = read * (3_000 - 300);
    let db = h.db.reconnect().await;
    let rolled: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(cache_saved_nanos), 0) AS BIGINT) FROM llm_usage_daily",
    )
    .fetch_one(&db.pool)
    .await
    .expect("summing the rollup's savings");
    assert_eq!(rolled, saved);
    let shown = format!(
        "saved ${}.{:04}",
        (saved + 50_000) / 100_000 / 10_000,
        (saved + 50_000) / 100_000 % 10_000
    );
    let prompt: i64 = rows.iter().map(|r| r.0 + r.1 + r.2 + r.3).sum();
    let tenths = (read * 1000 + prompt / 2) / prompt;
    let stats = reply(&h, &bot, &text_update(10, CHAT, "/llm_stats"), 4).await;
    assert!(
        stats.contains(&format!(
            "Cache hit rate: {}.{}% · {shown}",
            tenths / 10,
            tenths % 10
        )),
        "{shown} not in {stats}"
    );
}
for_each_db!(cache_breakpoints_cut_the_bill_and_llm_stats_shows_the_saving);

async fn the_response_cache_answers_a_repeated_first_question_without_a_call(db: TestDb) {
    let h = Harness::new(
        db,
        BotConfigOptions {
            llm_yaml: "  streaming: false\n  responseCache: {enabled: true, ttl: 1h}\n".into(),
            extra_yaml: "knowledge:\n  - inline: \"# Prices\\nPro costs 49 dollars.\"\n".into(),
            ..Default::default()
        },
    )
    .await;
    let bot = h.start().await;
    let send = |update_id: i64, chat: i64, text: &'static str| {
        let bot = &bot;
        async move {
            assert_eq!(
                bot.post_update(&text_update(update_id, chat, text)).await,
                200
            )
        }
    };
    send(1, 501, "What does Pro cost?").await;
    eventually(WAIT, "the first answer", || {
        !h.telegram.sent_texts(501).is_empty()
    })
    .await;
    // Another lead, the same question in other spacing and case: from the cache.
    send(2, 502, "  what does PRO cost? ").await;
    eventually(WAIT, "the cached answer", || {
        !h.telegram.sent_texts(502).is_empty()
    })
    .await;
    assert_eq!(
        h.telegram.sent_texts(502),
        ["reply: What does Pro cost?"],
        "the stored answer"
    );
    // A follow-up question of the first lead is never answered from the cache.
    send(3, 501, "What does Pro cost?").await;
    eventually(WAIT, "the follow-up answer", || {
        h.telegram.sent_texts(501).len() == 2
    })
    .await;
    assert_eq!(
        h.llm.requests().len(),
        2,
        "one call for the first question, one for the follow-up"
    );

    let db = h.db.reconnect().await;
    let rows: Vec<(i64, String, i64, i64)> = sqlx::query_as(
        "SELECT chat_id, outcome, cost_nanos, input_tokens FROM llm_ledger ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1], (502, "response_cache".to_owned(), 0, 0));
    assert!(rows[0].2 > 0 && rows[2].2 > 0);
    let metrics = bot
        .metrics_with(&["botfleet_response_cache_hits_total 1"])
        .await;
    assert!(
        metrics.contains("botfleet_response_cache_hits_total 1"),
        "{metrics}"
    );
}
for_each_db!(the_response_cache_answers_a_repeated_first_question_without_a_call);
