//! A tiny `--flag value` parser with environment fallbacks: benchmarks take few parameters and
//! print every one of them in their table, so no derive machinery is needed.

use std::collections::HashMap;
use std::str::FromStr;

/// One accepted flag: its name (without `--`), an environment variable that may set it, its
/// default (as text, shown in `--help`) and what it means.
#[derive(Clone, Copy)]
pub struct Flag {
    pub name: &'static str,
    pub env: Option<&'static str>,
    pub default: &'static str,
    pub help: &'static str,
}

impl Flag {
    /// A flag set on the command line only.
    pub const fn new(name: &'static str, default: &'static str, help: &'static str) -> Self {
        Self {
            name,
            env: None,
            default,
            help,
        }
    }

    /// The same flag, also set by the environment variable `env`.
    pub const fn or_env(self, env: &'static str) -> Self {
        Self {
            env: Some(env),
            ..self
        }
    }
}

/// `--db`: the databases a bot benchmark runs on.
pub const DB: Flag = Flag::new(
    "db",
    "sqlite,postgres",
    "databases to run on (sqlite, postgres)",
)
.or_env("BENCH_DBS");
/// `--database-url`: the PostgreSQL server a fresh database is created on.
pub const DATABASE_URL: Flag = Flag::new(
    "database-url",
    "postgres://postgres@127.0.0.1:5432/test",
    "PostgreSQL admin URL; a fresh database is created next to it",
)
.or_env("BENCH_DATABASE_URL");
/// `--bot-bin`: the `botfleet-bot` binary under test.
pub const BOT_BIN: Flag = Flag::new(
    "bot-bin",
    "",
    "botfleet-bot binary (default: next to this one)",
)
.or_env("BOTFLEET_BOT_BIN");

/// `--llm-latency-ms`: the fixed latency of the fake LLM.
pub const LLM_LATENCY_MS: Flag =
    Flag::new("llm-latency-ms", "200", "fixed latency of the fake LLM");
/// `--pg-plan-cache-mode`: a diagnostic setting of the fresh PostgreSQL database.
pub const PG_PLAN_CACHE_MODE: Flag = Flag::new(
    "pg-plan-cache-mode",
    "",
    "diagnostic: ALTER DATABASE SET plan_cache_mode (e.g. force_custom_plan) on the fresh PostgreSQL database",
);

/// `--runs`: how many times a database benchmark times each query.
pub const RUNS: Flag = Flag::new("runs", "200", "timed runs of each query");
/// `--keep`: keep the scratch database of a database benchmark for a look afterwards.
pub const KEEP: Flag = Flag::new("keep", "false", "keep the scratch database (true or false)");

pub struct Flags {
    values: HashMap<&'static str, String>,
}

impl Flags {
    /// Parses the process arguments; `--help` prints the flags and exits, an unknown flag or a
    /// missing value exits with status 2.
    pub fn parse(about: &str, known: &[Flag]) -> Self {
        Self::parse_from(about, known, std::env::args().skip(1))
    }

    pub fn parse_from(about: &str, known: &[Flag], args: impl IntoIterator<Item = String>) -> Self {
        let mut values = HashMap::new();
        for flag in known {
            let from_env = flag
                .env
                .and_then(|name| std::env::var(name).ok())
                .filter(|v| !v.is_empty());
            values.insert(
                flag.name,
                from_env.unwrap_or_else(|| flag.default.to_owned()),
            );
        }
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg == "--help" || arg == "-h" {
                println!("{about}\n\nFlags:");
                for flag in known {
                    let env = flag.env.map(|e| format!(", env {e}")).unwrap_or_default();
                    println!(
                        "  --{:<18} {} (default {:?}{env})",
                        flag.name, flag.help, flag.default
                    );
                }
                std::process::exit(0);
            }
            let (name, inline) = match arg.strip_prefix("--") {
                Some(rest) => match rest.split_once('=') {
                    Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
                    None => (rest.to_owned(), None),
                },
                None => usage_error(&format!("unexpected argument {arg:?}")),
            };
            let Some(flag) = known.iter().find(|f| f.name == name) else {
                usage_error(&format!("unknown flag --{name} (see --help)"))
            };
            let value = inline
                .or_else(|| args.next())
                .unwrap_or_else(|| usage_error(&format!("--{name} needs a value")));
            values.insert(flag.name, value);
        }
        Self { values }
    }

    /// The raw text of a flag.
    pub fn text(&self, name: &str) -> String {
        self.values
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("flag --{name} was not declared"))
    }

    /// A flag parsed as `T`; exits with a message naming the flag when it does not parse.
    pub fn get<T: FromStr>(&self, name: &str) -> T {
        let text = self.text(name);
        text.parse()
            .unwrap_or_else(|_| usage_error(&format!("--{name}: cannot parse {text:?}")))
    }

    /// A comma-separated list, e.g. `--workers 1,8,32`.
    pub fn list<T: FromStr>(&self, name: &str) -> Vec<T> {
        self.text(name)
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .unwrap_or_else(|_| usage_error(&format!("--{name}: cannot parse {s:?}")))
            })
            .collect()
    }
}

fn usage_error(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2)
}
