//! The shape of the code: no module of the crate uses one that uses it back, and the
//! event contract's crate stays small enough for any consumer to depend on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its non-test code names as `crate::…`.
fn module_uses() -> BTreeMap<String, BTreeSet<String>> {
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".rs") || name == "tests.rs" || name.ends_with("_tests.rs") {
            continue;
        }
        let relative = path
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let module = relative
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        let used = uses.entry(module.clone()).or_default();
        for line in code.lines().map(|l| l.split("//").next().unwrap()) {
            for (i, _) in line.match_indices("crate::") {
                used.extend(named_after(&line[i + "crate::".len()..]));
            }
        }
        // `use crate::{a::X, b}` spread over lines.
        for (i, _) in code.match_indices("crate::{") {
            let group = &code[i + "crate::{".len()..];
            let end = group.find("};").unwrap_or(group.len());
            used.extend(top_level_items(&group[..end]));
        }
        used.remove(&module);
    }
    uses
}

fn named_after(rest: &str) -> Vec<String> {
    let ident: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if ident.is_empty() {
        Vec::new()
    } else {
        vec![ident]
    }
}

/// The first identifier of each comma-separated item at the group's top level.
fn top_level_items(group: &str) -> Vec<String> {
    let (mut depth, mut items, mut item) = (0, Vec::new(), String::new());
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => items.push(std::mem::take(&mut item)),
            _ => {}
        }
        item.push(c);
    }
    items.push(item);
    items
        .iter()
        .flat_map(|i| named_after(i.trim_start_matches(',').trim()))
        .collect()
}

/// A path a → … → a in the graph, if there is one.
fn a_cycle(uses: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        uses: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if !done.insert(node.to_owned()) {
            return None;
        }
        path.push(node.to_owned());
        for next in uses.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, uses, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    uses.keys()
        .find_map(|m| visit(m, uses, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_uses_one_that_uses_it_back() {
    let uses = module_uses();
    assert!(
        uses.contains_key("delivery") && uses.contains_key("spool"),
        "{uses:?}"
    );
    if let Some(cycle) = a_cycle(&uses) {
        panic!("a module cycle: {}", cycle.join(" → "));
    }
}

#[test]
fn the_delivery_core_uses_nothing_above_it() {
    let uses = module_uses();
    assert_eq!(
        uses["delivery"],
        BTreeSet::from(["metrics".to_owned()]),
        "the core knows records and buffers, not HTTP, Kafka or topics"
    );
}

#[test]
fn the_cycle_check_finds_a_cycle_when_there_is_one() {
    let mut uses = BTreeMap::new();
    uses.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    uses.insert("b".to_owned(), BTreeSet::from(["c".to_owned()]));
    uses.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(a_cycle(&uses).unwrap(), ["a", "b", "c", "a"]);
    assert_eq!(top_level_items("a::X, b::{c, d},\n e"), ["a", "b", "e"]);
}

#[test]
fn the_event_crate_depends_on_serde_and_serde_json_only() {
    let manifest = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/tim-event/Cargo.toml"),
    )
    .unwrap();
    let manifest: toml::Table = manifest.parse().unwrap();
    let dependencies: BTreeSet<&str> = manifest["dependencies"]
        .as_table()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(dependencies, BTreeSet::from(["serde", "serde_json"]));
    for field in ["description", "license", "documentation", "readme"] {
        assert!(manifest["package"].get(field).is_some(), "package.{field}");
    }
}
