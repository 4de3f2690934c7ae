//! The rendered alerts, run by Prometheus' own rule engine (`promtool check rules` and
//! `promtool test rules`): each fires on synthetic series of this bot with the labels and text a
//! person reads, and the series of another bot in the same namespace do not leak in.
//!
//! Skipped (with a note) when `promtool` is not installed, except under `CI=true`, where CI
//! installs it and its absence fails the test.

mod common;

use std::path::PathBuf;
use std::process::Command;

use botfleet_operator::render::{self, RenderDefaults};

fn promtool() -> Option<PathBuf> {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        // CI installs promtool (.ci/install-tools.sh): there a missing tool is a failure.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "promtool is not installed but CI=true"
        );
        eprintln!("promtool is not installed: skipping the rule engine tests");
    }
    found.then(|| PathBuf::from("promtool"))
}

fn write_rules(dir: &std::path::Path) {
    let children =
        render::render_all(&common::webhook_postgres(), &RenderDefaults::default()).unwrap();
    let text = render::prometheus_rules_file(children.prometheus_rule.as_ref().unwrap());
    std::fs::write(dir.join("rules.yaml"), text).unwrap();
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("botfleet-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(promtool: &PathBuf, dir: &std::path::Path, args: &[&str]) {
    let out = Command::new(promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_accepts_the_rules() {
    let Some(promtool) = promtool() else { return };
    let dir = temp_dir("check-rules");
    write_rules(&dir);
    run(&promtool, &dir, &["check", "rules", "rules.yaml"]);
    std::fs::remove_dir_all(dir).unwrap();
}

const RUNBOOK: &str = "https://github.com/botfleet/botfleet/blob/main/docs/runbooks.md";

#[test]
fn each_alert_fires_for_this_bot_only() {
    let Some(promtool) = promtool() else { return };
    let dir = temp_dir("test-rules");
    write_rules(&dir);
    let ours = r#"namespace="bots",service="sales-bot",pod="sales-bot-1""#;
    let other = r#"namespace="bots",service="other-bot",pod="other-bot-1""#;
    let tests = format!(
        r#"
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  # 90% of the daily budget; the monthly one is at 20% (the other bot's 95% must not count).
  - interval: 1m
    input_series:
      - {{series: 'botfleet_llm_spend_usd{{{ours},period="day"}}', values: '4.5x10'}}
      - {{series: 'botfleet_llm_budget_usd{{{ours},period="day"}}', values: '5x10'}}
      - {{series: 'botfleet_llm_spend_usd{{{ours},period="month"}}', values: '20x10'}}
      - {{series: 'botfleet_llm_budget_usd{{{ours},period="month"}}', values: '100x10'}}
      - {{series: 'botfleet_llm_spend_usd{{{other},period="month"}}', values: '95x10'}}
      - {{series: 'botfleet_llm_budget_usd{{{other},period="month"}}', values: '100x10'}}
    alert_rule_test:
      - eval_time: 5m
        alertname: BotfleetBudgetNearlySpent
        exp_alerts:
          - exp_labels: {{severity: warning, botfleet_bot: sales-bot, namespace: bots, period: day}}
            exp_annotations:
              summary: TelegramBot bots/sales-bot has spent 80% of its day LLM budget
              description: Spend is at 90% of the day budget. At 100% the bot stops calling the LLM if hardStop is on.
              runbook_url: {RUNBOOK}#botfleetbudgetnearlyspent
      - eval_time: 5m
        alertname: BotfleetBudgetExhausted
        exp_alerts: []

  - interval: 1m
    input_series:
      - {{series: 'botfleet_llm_spend_usd{{{ours},period="day"}}', values: '5.2x10'}}
      - {{series: 'botfleet_llm_budget_usd{{{ours},period="day"}}', values: '5x10'}}
    alert_rule_test:
      - eval_time: 5m
        alertname: BotfleetBudgetExhausted
        exp_alerts:
          - exp_labels: {{severity: critical, botfleet_bot: sales-bot, namespace: bots, period: day}}
            exp_annotations:
              summary: TelegramBot bots/sales-bot has spent its whole day LLM budget
              description: Spend is at 104% of the day budget. With hardStop the bot answers with a fixed text until the period rolls over.
              runbook_url: {RUNBOOK}#botfleetbudgetexhausted
      - eval_time: 5m
        alertname: BotfleetBudgetNearlySpent
        exp_alerts: []

  # 0.10 USD a minute is 144 USD a day against a 5 USD daily budget.
  - interval: 1m
    input_series:
      - {{series: 'botfleet_llm_cost_usd_total{{{ours},model="claude-sonnet-4-5",request_type="chat"}}', values: '0+0.1x120'}}
      - {{series: 'botfleet_llm_budget_usd{{{ours},period="day"}}', values: '5x120'}}
      - {{series: 'botfleet_llm_cost_usd_total{{{other},model="m",request_type="chat"}}', values: '0+0.1x120'}}
    alert_rule_test:
      - eval_time: 90m
        alertname: BotfleetSpendBurnRateHigh
        exp_alerts:
          - exp_labels: {{severity: warning, botfleet_bot: sales-bot, namespace: bots}}
            exp_annotations:
              summary: TelegramBot bots/sales-bot spends faster than its daily budget allows
              description: At the last hour's rate the bot would spend 144 USD a day, more than its daily budget.
              runbook_url: {RUNBOOK}#botfleetspendburnratehigh

  # 2 of 10 requests a minute fail; budget refusals are not failures.
  - interval: 1m
    input_series:
      - {{series: 'botfleet_llm_requests_total{{{ours},model="m",request_type="chat",outcome="ok"}}', values: '0+8x40'}}
      - {{series: 'botfleet_llm_requests_total{{{ours},model="m",request_type="chat",outcome="server_error"}}', values: '0+2x40'}}
      - {{series: 'botfleet_llm_requests_total{{{ours},model="m",request_type="chat",outcome="budget_refused"}}', values: '0+50x40'}}
      - {{series: 'botfleet_llm_requests_total{{{other},model="m",request_type="chat",outcome="ok"}}', values: '0+1000x40'}}
    alert_rule_test:
      - eval_time: 30m
        alertname: BotfleetLLMErrorRatioHigh
        exp_alerts:
          - exp_labels: {{severity: warning, botfleet_bot: sales-bot, namespace: bots}}
            exp_annotations:
              summary: More than 10% of the LLM requests of TelegramBot bots/sales-bot fail
              description: 20% of LLM requests failed over 10 minutes (rate limits, overload, server errors, timeouts or client errors). Users get late or fallback replies.
              runbook_url: {RUNBOOK}#botfleetllmerrorratiohigh

  # With reservations the spend stops short of the limit: refusals are what shows the stop.
  - interval: 1m
    input_series:
      - {{series: 'botfleet_llm_requests_total{{{ours},model="m",request_type="chat",outcome="budget_refused"}}', values: '0x5 0+2x15'}}
      - {{series: 'botfleet_llm_requests_total{{{other},model="m",request_type="chat",outcome="budget_refused"}}', values: '0+2x20'}}
      - {{series: 'botfleet_llm_spend_usd{{{ours},period="day"}}', values: '4.9x20'}}
      - {{series: 'botfleet_llm_budget_usd{{{ours},period="day"}}', values: '5x20'}}
    alert_rule_test:
      - eval_time: 4m
        alertname: BotfleetBudgetRefusingCalls
        exp_alerts: []
      - eval_time: 10m
        alertname: BotfleetBudgetRefusingCalls
        exp_alerts:
          - exp_labels: {{severity: critical, botfleet_bot: sales-bot, namespace: bots}}
            exp_annotations:
              summary: TelegramBot bots/sales-bot refuses LLM calls because its budget is reached
              description: LLM calls were refused by the budget in the last 10 minutes; those leads got the fixed stop reply. It clears 10 minutes after the last refusal (the period rolled over or the limit was raised).
              runbook_url: {RUNBOOK}#botfleetbudgetrefusingcalls
      - eval_time: 10m
        alertname: BotfleetBudgetExhausted
        exp_alerts: []

  - interval: 1m
    input_series:
      - {{series: 'botfleet_llm_unpriced_calls_total{{{ours},model="gpt-x"}}', values: '0+1x20'}}
      - {{series: 'botfleet_llm_unpriced_calls_total{{{other},model="gpt-y"}}', values: '0+1x20'}}
    alert_rule_test:
      - eval_time: 10m
        alertname: BotfleetUnpricedModelCalls
        exp_alerts:
          - exp_labels: {{severity: warning, botfleet_bot: sales-bot, namespace: bots, model: gpt-x}}
            exp_annotations:
              summary: TelegramBot bots/sales-bot calls model gpt-x that has no price
              description: Calls to gpt-x are not in spec.pricing, so their cost is not counted against the budget. Add a price for the model.
              runbook_url: {RUNBOOK}#botfleetunpricedmodelcalls

  - interval: 1m
    input_series:
      - {{series: 'botfleet_inbox_pending{{{ours}}}', values: '150x30'}}
      - {{series: 'botfleet_inbox_pending{{{other}}}', values: '5000x30'}}
    alert_rule_test:
      - eval_time: 20m
        alertname: BotfleetUpdateBacklog
        exp_alerts:
          - exp_labels: {{severity: warning, botfleet_bot: sales-bot, namespace: bots}}
            exp_annotations:
              summary: TelegramBot bots/sales-bot has a backlog of unprocessed Telegram updates
              description: "150 updates wait in the inbox: replies are delayed. The workers are slow (LLM latency) or stuck."
              runbook_url: {RUNBOOK}#botfleetupdatebacklog

  # kube-state-metrics: the handlers have none available; the scheduler is fine; another
  # bot's Deployment scaled to zero on purpose is not an alert either.
  - interval: 1m
    input_series:
      - {{series: 'kube_deployment_status_replicas_available{{namespace="bots",deployment="sales-bot",job="kube-state-metrics"}}', values: '0x20'}}
      - {{series: 'kube_deployment_spec_replicas{{namespace="bots",deployment="sales-bot",job="kube-state-metrics"}}', values: '2x20'}}
      - {{series: 'kube_deployment_status_replicas_available{{namespace="bots",deployment="sales-bot-scheduler",job="kube-state-metrics"}}', values: '2x20'}}
      - {{series: 'kube_deployment_spec_replicas{{namespace="bots",deployment="sales-bot-scheduler",job="kube-state-metrics"}}', values: '2x20'}}
      - {{series: 'kube_deployment_status_replicas_available{{namespace="bots",deployment="other-bot",job="kube-state-metrics"}}', values: '0x20'}}
      - {{series: 'kube_deployment_spec_replicas{{namespace="bots",deployment="other-bot",job="kube-state-metrics"}}', values: '1x20'}}
    alert_rule_test:
      - eval_time: 10m
        alertname: BotfleetNoReadyReplica
        exp_alerts:
          - exp_labels: {{severity: critical, botfleet_bot: sales-bot, namespace: bots, deployment: sales-bot}}
            exp_annotations:
              summary: "TelegramBot bots/sales-bot: Deployment sales-bot has no ready replica"
              description: "No pod of sales-bot is available: the bot does not answer (or, for the scheduler, sends no follow-ups). Check the pods' events and logs."
              runbook_url: {RUNBOOK}#botfleetnoreadyreplica

  # A lead waits 20 minutes for a person (past the default 15m); the other bot's wait does not count.
  - interval: 1m
    input_series:
      - {{series: 'botfleet_handoff_oldest_waiting_seconds{{{ours}}}', values: '0+60x30'}}
      - {{series: 'botfleet_handoff_oldest_waiting_seconds{{{other}}}', values: '0+600x30'}}
    alert_rule_test:
      - eval_time: 10m
        alertname: BotfleetHandoffWaiting
        exp_alerts: []
      - eval_time: 20m
        alertname: BotfleetHandoffWaiting
        exp_alerts:
          - exp_labels: {{severity: warning, botfleet_bot: sales-bot, namespace: bots}}
            exp_annotations:
              summary: A lead of TelegramBot bots/sales-bot waits for a person
              description: A lead handed over to a person has waited 20m 0s and no one has taken it (handoff.waitAlertAfter is 900s). Take it with the Take button or /leads in Telegram.
              runbook_url: {RUNBOOK}#botfleethandoffwaiting
"#
    );
    std::fs::write(dir.join("tests.yaml"), tests).unwrap();
    run(&promtool, &dir, &["test", "rules", "tests.yaml"]);
    std::fs::remove_dir_all(dir).unwrap();
}
