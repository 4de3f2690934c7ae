//! The module structure stays as designed: no import cycle between the files of any crate, and
//! in the bot crate no import that runs up the layer map of `docs/architecture.md` (the block
//! after `<!-- layers -->`, read here, so the doc and the test cannot disagree).
//!
//! Imports are read from the text: `crate::…` and `super::…` paths (with `{…}` groups), outside
//! `#[cfg(test)] mod … { … }` blocks and `//` comments, as `/work/shared/hooks/import_cycles.py`
//! reads them. A file is a module; a file's own children do not count as a cycle with it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const CRATES: [&str; 6] = ["api", "llm", "lease", "telemetry", "bot", "operator"];
const LAYER_MARKER: &str = "<!-- layers -->";

type Module = Vec<String>;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `a/b/mod.rs` and `a/b.rs` are both module `a::b`; `lib.rs` and `main.rs` the root.
fn module_of(path: &Path, root: &Path) -> Module {
    let rel = path.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Module = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The text without `#[cfg(test)] mod x { … }` blocks and `//` comments.
fn design_text(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        let after = rest[at + "#[cfg(test)]".len()..].trim_start();
        let is_mod = after.starts_with("mod ")
            && after
                .find(['{', ';'])
                .is_some_and(|i| after.as_bytes()[i] == b'{');
        if !is_mod {
            out.push_str(&rest[..at + 1]);
            rest = &rest[at + 1..];
            continue;
        }
        out.push_str(&rest[..at]);
        let open = rest[at..].find('{').unwrap() + at;
        let mut depth = 0;
        let mut end = rest.len();
        for (i, c) in rest[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out.lines()
        .map(|line| line.find("//").map_or(line, |i| &line[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path a use tree starting at `s` names: `a::{b, c::d}` gives `a::b`, `a::c::d`.
fn use_tree(s: &str, prefix: &[String], out: &mut Vec<Module>) -> usize {
    let mut path = prefix.to_vec();
    let mut i = 0;
    let bytes = s.as_bytes();
    loop {
        while i < s.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < s.len() && bytes[i] == b'{' {
            i += 1;
            loop {
                i += use_tree(&s[i..], &path, out);
                while i < s.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                match bytes.get(i) {
                    Some(b',') => i += 1,
                    Some(b'}') => return i + 1,
                    _ => return i,
                }
            }
        }
        let start = i;
        while i < s.len() && is_ident(bytes[i] as char) {
            i += 1;
        }
        if start < i && &s[start..i] != "self" {
            path.push(s[start..i].to_owned());
        }
        if s[i..].starts_with("::") {
            i += 2;
        } else {
            out.push(path);
            return i;
        }
    }
}

/// The module paths (relative to the crate root) that module `m`'s text names.
fn named_paths(m: &Module, text: &str) -> Vec<Module> {
    let mut paths = Vec::new();
    for keyword in ["crate::", "super::"] {
        for (at, _) in text.match_indices(keyword) {
            if text[..at].chars().next_back().is_some_and(is_ident) {
                continue;
            }
            let mut found = Vec::new();
            use_tree(&text[at + keyword.len()..], &[], &mut found);
            for mut path in found {
                let mut start: Module = Vec::new();
                if keyword == "super::" {
                    start = m[..m.len().saturating_sub(1)].to_vec();
                    while path.first().is_some_and(|s| s == "super") {
                        start.pop();
                        path.remove(0);
                    }
                }
                start.extend(path);
                paths.push(start);
            }
        }
    }
    paths
}

struct Graph {
    edges: BTreeMap<Module, BTreeSet<Module>>,
}

fn graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mods: BTreeMap<Module, PathBuf> = files
        .iter()
        .map(|p| (module_of(p, src), p.clone()))
        .collect();
    let mut edges = BTreeMap::new();
    for (m, path) in &mods {
        let text = design_text(&std::fs::read_to_string(path).unwrap());
        let mut targets = BTreeSet::new();
        for named in named_paths(m, &text) {
            let target = (1..=named.len())
                .rev()
                .map(|k| named[..k].to_vec())
                .find(|cand| mods.contains_key(cand));
            if let Some(t) = target
                && &t != m
                // A file's own children do not count as a cycle with it.
                && (m.is_empty() || !t.starts_with(m))
            {
                targets.insert(t);
            }
        }
        edges.insert(m.clone(), targets);
    }
    Graph { edges }
}

/// Strongly connected sets of more than one file, with at least two files that are not a
/// parent of another in the set (a child using its parent's re-export is normal Rust).
fn cycles(g: &Graph) -> Vec<Vec<Module>> {
    struct Tarjan<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on: BTreeSet<&'a Module>,
        out: Vec<Vec<Module>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a Module) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on.insert(v);
            for w in &self.g.edges[v] {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                loop {
                    let w = self.stack.pop().unwrap();
                    self.on.remove(w);
                    comp.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    self.out.push(comp);
                }
            }
        }
    }
    let mut t = Tarjan {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.edges.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.out
        .into_iter()
        .filter(|comp| {
            let leafs = comp
                .iter()
                .filter(|c| !comp.iter().any(|o| o != *c && o.starts_with(c)))
                .count();
            leafs >= 2
        })
        .collect()
}

fn show(m: &Module) -> String {
    if m.is_empty() {
        "lib".to_owned()
    } else {
        m.join("/")
    }
}

/// The bot's layer map from docs/architecture.md: top-level module → layer rank (0 is the
/// bottom). Each line of the block is `layer-name  module module …`, the top layer first.
fn layer_map() -> BTreeMap<String, (usize, String)> {
    let doc = std::fs::read_to_string(workspace().join("docs/architecture.md")).unwrap();
    let after = doc
        .split_once(LAYER_MARKER)
        .unwrap_or_else(|| panic!("docs/architecture.md has no {LAYER_MARKER} block"))
        .1;
    let block = after
        .split_once("```")
        .and_then(|(_, rest)| rest.split_once('\n'))
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("a fenced block follows the layers marker")
        .0;
    let lines: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut map = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        let mut words = line.split_whitespace();
        let layer = words.next().unwrap().trim_end_matches(':').to_owned();
        for module in words {
            let rank = lines.len() - 1 - i;
            let old = map.insert(module.to_owned(), (rank, layer.clone()));
            assert!(old.is_none(), "{module} is in two layers of the map");
        }
    }
    map
}

#[test]
fn no_crate_has_an_import_cycle_between_files() {
    let mut found = Vec::new();
    for krate in CRATES {
        let g = graph(&workspace().join(krate).join("src"));
        for comp in cycles(&g) {
            let mut names: Vec<String> = comp.iter().map(show).collect();
            names.sort();
            found.push(format!("{krate}: {}", names.join(" <-> ")));
        }
    }
    assert!(
        found.is_empty(),
        "import cycles between files:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_bot_imports_only_down_its_layer_map() {
    let map = layer_map();
    let g = graph(&workspace().join("bot/src"));
    let mut upward = Vec::new();
    let mut unmapped = BTreeSet::new();
    for (from, targets) in &g.edges {
        let Some(from_top) = from.first() else {
            continue; // lib.rs/main.rs: the crate root declares every module
        };
        let Some((from_rank, from_layer)) = map.get(from_top) else {
            unmapped.insert(from_top.clone());
            continue;
        };
        for to in targets {
            let Some(to_top) = to.first() else { continue };
            let Some((to_rank, to_layer)) = map.get(to_top) else {
                unmapped.insert(to_top.clone());
                continue;
            };
            if to_rank > from_rank {
                upward.push(format!(
                    "{} ({from_layer}) imports {} ({to_layer})",
                    show(from),
                    show(to)
                ));
            }
        }
    }
    assert!(
        unmapped.is_empty(),
        "modules missing from the layer map in docs/architecture.md: {unmapped:?}"
    );
    assert!(
        upward.is_empty(),
        "imports that run up the layers:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_reader_sees_groups_super_and_skips_tests() {
    let m: Module = vec!["handoff".into(), "relay".into()];
    let text = design_text(
        "use crate::{db::Db, telegram::{self, Format}};\nuse super::notify; // crate::app\n\
         fn f() { crate::delivery::send(); }\n#[cfg(test)]\nmod tests { use crate::worker; }\n",
    );
    let paths: BTreeSet<String> = named_paths(&m, &text).iter().map(show).collect();
    let want = [
        "db/Db",
        "telegram",
        "telegram/Format",
        "handoff/notify",
        "delivery/send",
    ];
    assert_eq!(paths, want.iter().map(|s| s.to_string()).collect());
}
