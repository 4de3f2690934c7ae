//! Budgets: the hard-stop gate, threshold alerts sent once per period and re-armed by the
//! next one, state that survives a restart, gauges and the `/api/v1/usage` body.

#[macro_use]
mod support;

use std::time::Duration;

use botfleet_api::{BotConfig, BudgetConfig, ModelPrice};
use botfleet_bot::metrics::Metrics;
use botfleet_bot::money::{BudgetGate, CallContext, Money, Period, RequestType};
use botfleet_llm::{Attempt, Outcome, Usage};
use chrono::{DateTime, TimeZone, Utc};
use support::TestDb;
use support::fake_telegram::FakeTelegram;

const OWNERS: [i64; 2] = [111, 222];

fn day1() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap()
}

fn config(daily: Option<&str>, monthly: Option<&str>, hard_stop: bool) -> BotConfig {
    BotConfig {
        // $1.00 per million input tokens: 1,000 nano-USD per token, so 10,000 tokens = $0.01.
        pricing: vec![ModelPrice {
            model: "m".into(),
            input: "1.00".parse().unwrap(),
            output: "1.00".parse().unwrap(),
            cache_read: None,
            cache_write5m: None,
            cache_write1h: None,
            long_prompt: None,
        }],
        budget: Some(BudgetConfig {
            daily: daily.map(|d| d.parse().unwrap()),
            monthly: monthly.map(|m| m.parse().unwrap()),
            alert_thresholds: Some(vec![50, 80, 100]),
            hard_stop: Some(hard_stop),
            per_lead: None,
        }),
        owners: OWNERS.to_vec(),
        ..Default::default()
    }
}

/// Records one successful call costing `cents` US cents at `at`.
async fn spend(money: &Money, t: &TestDb, cents: u64, at: DateTime<Utc>) {
    let attempt = Attempt {
        model: "m".into(),
        outcome: Outcome::Ok,
        usage: Usage {
            input_tokens: cents * 10_000,
            ..Default::default()
        },
        latency: Duration::from_millis(500),
        status: Some(200),
    };
    let call = CallContext {
        chat_id: Some(5),
        update_id: None,
        request_type: RequestType::Chat,
    };
    let cost = money
        .record_call(&t.db, &Metrics::default(), call, &[attempt], at)
        .await
        .unwrap();
    assert_eq!(cost, cents as i64 * 10_000_000);
}

async fn a_threshold_crossed_alerts_each_owner_once(t: TestDb) {
    let money = Money::from_config(&config(Some("1.00"), None, true)).unwrap();
    let telegram = FakeTelegram::start().await;
    let client = telegram.delivery(&t.db);

    spend(&money, &t, 40, day1()).await;
    assert!(
        money
            .check_alerts(&t.db, &client, day1())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(telegram.sent().is_empty());

    spend(&money, &t, 15, day1()).await; // $0.55: past 50 %
    let sent = money.check_alerts(&t.db, &client, day1()).await.unwrap();
    assert_eq!(
        sent.iter()
            .map(|a| (a.owner_id, a.period, a.threshold))
            .collect::<Vec<_>>(),
        vec![(111, Period::Day, 50), (222, Period::Day, 50)]
    );
    for _ in 0..3 {
        assert!(
            money
                .check_alerts(&t.db, &client, day1())
                .await
                .unwrap()
                .is_empty()
        );
    }
    spend(&money, &t, 10, day1()).await; // $0.65: still between 50 and 80 %
    assert!(
        money
            .check_alerts(&t.db, &client, day1())
            .await
            .unwrap()
            .is_empty()
    );

    let messages = telegram.sent();
    assert_eq!(
        messages.iter().map(|m| m.chat_id).collect::<Vec<_>>(),
        OWNERS.to_vec()
    );
    for m in &messages {
        assert_eq!(m.parse_mode.as_deref(), Some("HTML"));
        assert!(m.text.contains("50% of the daily limit"), "{}", m.text);
        assert!(m.text.contains("$0.5500 of $1.00 (55.0%)"), "{}", m.text);
    }

    spend(&money, &t, 20, day1()).await; // $0.85: past 80 %
    let sent = money.check_alerts(&t.db, &client, day1()).await.unwrap();
    assert_eq!(
        sent.iter().map(|a| a.threshold).collect::<Vec<_>>(),
        vec![80, 80]
    );
    assert!(
        money
            .check_alerts(&t.db, &client, day1())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(telegram.sent().len(), 4);
}

async fn thresholds_crossed_together_make_one_message(t: TestDb) {
    let money = Money::from_config(&config(Some("1.00"), None, true)).unwrap();
    let telegram = FakeTelegram::start().await;
    spend(&money, &t, 120, day1()).await;
    let sent = money
        .check_alerts(&t.db, &telegram.delivery(&t.db), day1())
        .await
        .unwrap();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        (sent[0].threshold, sent[0].thresholds.clone()),
        (100, vec![50, 80, 100])
    );
    let texts: Vec<String> = telegram.sent().into_iter().map(|m| m.text).collect();
    assert_eq!(texts.len(), 2);
    assert!(
        texts[0].contains("100% of the daily limit") && texts[0].contains("Hard stop is on"),
        "{}",
        texts[0]
    );
    assert!(
        money
            .check_alerts(&t.db, &telegram.delivery(&t.db), day1())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_new_day_rearms_the_daily_alerts(t: TestDb) {
    let money = Money::from_config(&config(Some("1.00"), Some("100.00"), true)).unwrap();
    let telegram = FakeTelegram::start().await;
    let client = telegram.delivery(&t.db);
    spend(&money, &t, 60, day1()).await;
    assert_eq!(
        money
            .check_alerts(&t.db, &client, day1())
            .await
            .unwrap()
            .len(),
        2
    );

    let day2 = day1() + chrono::Duration::days(1);
    assert!(
        money
            .check_alerts(&t.db, &client, day2)
            .await
            .unwrap()
            .is_empty(),
        "a new day starts at $0"
    );
    spend(&money, &t, 10, day2).await;
    assert!(
        money
            .check_alerts(&t.db, &client, day2)
            .await
            .unwrap()
            .is_empty()
    );
    spend(&money, &t, 45, day2).await; // $0.55 on day 2
    let sent = money.check_alerts(&t.db, &client, day2).await.unwrap();
    assert_eq!(
        sent.iter()
            .map(|a| (a.period_key.as_str(), a.threshold))
            .collect::<Vec<_>>(),
        vec![("2026-11-23", 50), ("2026-11-23", 50)]
    );
    assert_eq!(telegram.sent().len(), 4);
    // The month ($1.15 of $100) has crossed nothing.
    assert!(sent.iter().all(|a| a.period == Period::Day));
}

async fn an_undelivered_alert_is_retried_and_never_duplicated(t: TestDb) {
    let money = Money::from_config(&config(Some("1.00"), None, true)).unwrap();
    let telegram = FakeTelegram::start().await;
    let client = telegram.delivery(&t.db);
    spend(&money, &t, 55, day1()).await;

    telegram.set_failing(true);
    assert!(
        money
            .check_alerts(&t.db, &client, day1())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(telegram.rejected() >= 2, "both owners were tried");
    assert!(telegram.sent().is_empty());

    telegram.set_failing(false);
    assert_eq!(
        money
            .check_alerts(&t.db, &client, day1())
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        money
            .check_alerts(&t.db, &client, day1())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        telegram
            .sent()
            .iter()
            .map(|m| m.chat_id)
            .collect::<Vec<_>>(),
        OWNERS.to_vec()
    );
}

async fn hard_stop_refuses_once_a_limit_is_reached(t: TestDb) {
    let money = Money::from_config(&config(Some("0.60"), Some("1.00"), true)).unwrap();
    let soft = Money::from_config(&config(Some("0.60"), Some("1.00"), false)).unwrap();
    assert_eq!(money.gate(&t.db, day1()).await.unwrap(), BudgetGate::Open);
    spend(&money, &t, 59, day1()).await;
    assert_eq!(money.gate(&t.db, day1()).await.unwrap(), BudgetGate::Open);
    spend(&money, &t, 1, day1()).await; // exactly the daily limit
    assert_eq!(
        money.gate(&t.db, day1()).await.unwrap(),
        BudgetGate::Stopped {
            period: Period::Day
        }
    );
    assert_eq!(
        soft.gate(&t.db, day1()).await.unwrap(),
        BudgetGate::Open,
        "without hardStop limits only alert"
    );

    // Next day: the daily budget is fresh, but the month ($0.60 + $0.40 = $1.00) is spent.
    let day2 = day1() + chrono::Duration::days(1);
    assert_eq!(money.gate(&t.db, day2).await.unwrap(), BudgetGate::Open);
    spend(&money, &t, 40, day2).await;
    assert_eq!(
        money.gate(&t.db, day2).await.unwrap(),
        BudgetGate::Stopped {
            period: Period::Month
        }
    );
    // A new month opens the gate again.
    let next_month = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    assert_eq!(
        money.gate(&t.db, next_month).await.unwrap(),
        BudgetGate::Open
    );
    let summary = money.usage_summary(&t.db, day2).await.unwrap();
    assert!(summary.hard_stopped);
}

async fn budget_state_survives_a_restart(t: TestDb) {
    let cfg = config(Some("1.00"), None, true);
    {
        let money = Money::from_config(&cfg).unwrap();
        let telegram = FakeTelegram::start().await;
        spend(&money, &t, 100, day1()).await;
        assert_eq!(
            money
                .check_alerts(&t.db, &telegram.delivery(&t.db), day1())
                .await
                .unwrap()
                .len(),
            2
        );
        t.db.pool.close().await;
    }
    // A new process: new pool, new Money, nothing in memory.
    let db = t.reconnect().await;
    let money = Money::from_config(&cfg).unwrap();
    let telegram = FakeTelegram::start().await;
    let later = day1() + chrono::Duration::hours(3);
    assert_eq!(
        money.gate(&db, later).await.unwrap(),
        BudgetGate::Stopped {
            period: Period::Day
        }
    );
    assert!(
        money
            .check_alerts(&db, &telegram.delivery(&db), later)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        telegram.sent().is_empty(),
        "no alert sent twice after a restart"
    );
    assert_eq!(
        money.spend(&db, later).await.unwrap().day_nanos,
        1_000_000_000
    );
}

async fn usage_summary_and_gauges_come_from_the_ledger(t: TestDb) {
    let money = Money::from_config(&config(Some("5.00"), Some("100.00"), true)).unwrap();
    spend(&money, &t, 30, day1() - chrono::Duration::days(2)).await;
    spend(&money, &t, 12, day1()).await;
    // An unpriced call today counts as a request and an unpriced call, not as spend.
    let unpriced = Attempt {
        model: "unknown".into(),
        outcome: Outcome::Ok,
        usage: Usage {
            input_tokens: 10,
            ..Default::default()
        },
        latency: Duration::from_millis(10),
        status: Some(200),
    };
    let call = CallContext {
        chat_id: None,
        update_id: None,
        request_type: RequestType::Summary,
    };
    money
        .record_call(&t.db, &Metrics::default(), call, &[unpriced], day1())
        .await
        .unwrap();

    let summary = money.usage_summary(&t.db, day1()).await.unwrap();
    assert_eq!(
        serde_json::to_value(&summary).unwrap(),
        serde_json::json!({
            "day": "2026-11-22", "month": "2026-11",
            "spendTodayNanos": 120_000_000, "spendTodayUsd": "0.1200",
            "spendMonthNanos": 420_000_000, "spendMonthUsd": "0.4200",
            "budgetDailyNanos": 5_000_000_000_i64, "budgetMonthlyNanos": 100_000_000_000_i64,
            "requestsToday": 2, "unpricedCallsToday": 1, "hardStopped": false,
            // Lead 5's calls: $0.12 today, $0.42 this month.
            "topLeads": [{"chatId": 5, "spendTodayNanos": 120_000_000, "spendMonthNanos": 420_000_000}]
        })
    );

    let metrics = Metrics::default();
    money.refresh_gauges(&t.db, &metrics, day1()).await.unwrap();
    let text = metrics.encode();
    for line in [
        r#"botfleet_llm_spend_usd{period="day"} 0.12"#,
        r#"botfleet_llm_spend_usd{period="month"} 0.42"#,
        r#"botfleet_llm_budget_usd{period="day"} 5.0"#,
        r#"botfleet_llm_budget_usd{period="month"} 100.0"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing in:\n{text}"
        );
    }

    let report = money.report_budget(&t.db, day1()).await.unwrap();
    assert!(
        report.contains("Today (2026-11-22 UTC): $0.1200 of $5.00 (2.4%)"),
        "{report}"
    );
    assert!(
        report.contains("This month (2026-11): $0.4200 of $100.00 (0.4%)"),
        "{report}"
    );
    assert!(report.contains("1 unpriced calls today"), "{report}");
}

for_each_db!(
    a_threshold_crossed_alerts_each_owner_once,
    thresholds_crossed_together_make_one_message,
    a_new_day_rearms_the_daily_alerts,
    an_undelivered_alert_is_retried_and_never_duplicated,
    hard_stop_refuses_once_a_limit_is_reached,
    budget_state_survives_a_restart,
    usage_summary_and_gauges_come_from_the_ledger,
);
