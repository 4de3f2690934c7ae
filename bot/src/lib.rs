//! botfleet-bot: one Telegram bot backed by an LLM.
//!
//! The flow of one update: webhook or long poll → durable inbox → worker → conversation
//! pipeline (rate limit, budget, LLM, ledger) → reply. See docs/architecture.md.

pub mod app;
pub mod broadcast;
pub mod chat;
pub mod config;
pub mod context;
pub mod conversation;
pub mod dashboard;
pub mod db;
pub mod delivery;
pub mod followup;
pub mod handoff;
pub mod http;
pub mod inbox;
pub mod knowledge;
pub mod leads;
pub mod metrics;
pub mod money;
pub mod polling;
pub mod scheduler;
pub mod support;
pub mod telegram;
pub mod worker;
