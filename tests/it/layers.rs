//! The architecture as a test: the layer list in `src/lib.rs` matches the modules in `src/`,
//! every `crate::` path points to the same layer or one below, and no source file grows past
//! 400 lines of non-test code without saying why at its top.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Longest non-test part of a source file before its top must say why it is longer.
const MAX_LINES: usize = 400;

/// The words that state the reason (`//! Longer than 400 lines because ...`).
const LONG_REASON: &str = "Longer than 400 lines because";

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Layer number of each top-level module, from the numbered list in `src/lib.rs`'s docs:
/// `//! 2. vocabulary: [`subscription`], [`view`], ...` (continuation lines included).
fn layer_map() -> BTreeMap<String, usize> {
    let lib = fs::read_to_string(src().join("lib.rs")).expect("read src/lib.rs");
    let mut map = BTreeMap::new();
    let mut current: Option<usize> = None;
    let mut in_layers = false;
    for line in lib.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            break;
        };
        let doc = doc.trim();
        if doc.starts_with("# ") {
            in_layers = doc == "# Layers";
            current = None;
            continue;
        }
        if !in_layers {
            continue;
        }
        if let Some((number, _)) = doc.split_once(". ") {
            if let Ok(n) = number.parse::<usize>() {
                current = Some(n);
            }
        }
        let Some(layer) = current else { continue };
        let mut rest = doc;
        while let Some(start) = rest.find("[`") {
            let after = &rest[start + 2..];
            let Some(end) = after.find("`]") else { break };
            let name = &after[..end];
            let previous = map.insert(name.to_owned(), layer);
            assert!(previous.is_none(), "{name} is listed twice in src/lib.rs");
            rest = &after[end + 2..];
        }
    }
    assert!(!map.is_empty(), "src/lib.rs has no `# Layers` list");
    map
}

/// Top-level modules as the tree has them: `src/x.rs` and `src/x/`.
fn tree_modules() -> Vec<String> {
    let mut modules: Vec<String> = fs::read_dir(src())
        .expect("read src/")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_stem()?.to_str()?.to_owned();
            let is_module = path.is_dir() || path.extension().is_some_and(|e| e == "rs");
            (is_module && name != "lib" && name != "main").then_some(name)
        })
        .collect();
    modules.sort();
    modules
}

/// Whether the parent module includes `file` only under `#[cfg(test)]` (a test-only file).
fn is_test_module(file: &Path) -> bool {
    let (Some(stem), Some(dir)) = (file.file_stem().and_then(|s| s.to_str()), file.parent()) else {
        return false;
    };
    let parent = ["mod.rs", "lib.rs"]
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.exists() && path != file)
        .or_else(|| Some(dir.with_extension("rs")));
    let Some(text) = parent.and_then(|p| fs::read_to_string(p).ok()) else {
        return false;
    };
    text.contains(&format!("#[cfg(test)]\nmod {stem};"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a line names through `crate::` (`crate::a::b`, `crate::{a, b::c}`).
fn crate_paths(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let preceded = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        let after = &rest[at + "crate::".len()..];
        rest = after;
        if preceded {
            continue; // `upbit_exporter::crate::`-like identifiers, not a path root
        }
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphabetic() || c == '_') => {
                        item_start = false;
                        let name: String = group[i..]
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        found.push(name);
                    }
                    _ => {}
                }
            }
        } else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

/// Joins `use crate::{...}` groups spread over several lines into one line, drops comments.
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        match pending.as_mut() {
            Some((_, joined)) => {
                joined.push(' ');
                joined.push_str(code);
                if code.contains("};") {
                    lines.push(pending.take().expect("pending"));
                }
            }
            None if code.contains("crate::{") && !code.contains('}') => {
                pending = Some((i + 1, code.to_owned()));
            }
            None => lines.push((i + 1, code.to_owned())),
        }
    }
    lines.extend(pending);
    lines
}

#[test]
fn the_module_map_in_lib_rs_lists_every_module_once() {
    let map = layer_map();
    let listed: Vec<String> = map.keys().cloned().collect();
    assert_eq!(
        listed,
        tree_modules(),
        "src/lib.rs's layer list and the modules in src/ differ"
    );
}

#[test]
fn every_crate_path_points_to_its_own_layer_or_below() {
    let map = layer_map();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut upward = Vec::new();
    for file in files {
        let relative = file.strip_prefix(src()).expect("under src");
        let top = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|s| s.trim_end_matches(".rs").to_owned())
            .expect("a module");
        if top == "lib" || top == "main" {
            continue;
        }
        let own = map[&top];
        let text = fs::read_to_string(&file).expect("read source");
        for (line_no, line) in code_lines(&text) {
            for target in crate_paths(&line) {
                let Some(&layer) = map.get(&target) else {
                    continue; // items of lib.rs itself, e.g. a re-export
                };
                if layer > own {
                    upward.push(format!(
                        "src/{}:{line_no}: {top} (layer {own}) uses crate::{target} (layer {layer})",
                        relative.display()
                    ));
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that run up a layer:\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_source_file_is_long_without_a_reason() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut long = Vec::new();
    for file in files {
        let relative = file.strip_prefix(src()).expect("under src");
        if is_test_module(&file) {
            continue;
        }
        let text = fs::read_to_string(&file).expect("read source");
        let non_test = text
            .lines()
            .take_while(|line| !line.starts_with("#[cfg(test)]"))
            .count();
        let header: String = text
            .lines()
            .take_while(|line| line.starts_with("//!"))
            .collect::<Vec<_>>()
            .join(" ");
        if non_test > MAX_LINES && !header.contains(LONG_REASON) {
            long.push(format!("src/{} ({non_test} lines)", relative.display()));
        }
    }
    assert!(
        long.is_empty(),
        "over {MAX_LINES} non-test lines with no `{LONG_REASON}` in the module doc:\n{}",
        long.join("\n")
    );
}

#[test]
fn crate_paths_are_read_from_plain_and_grouped_imports() {
    assert_eq!(crate_paths("use crate::text::escape;"), ["text"]);
    assert_eq!(
        crate_paths("use crate::{messages::{A, B}, status, upbit::types::X};"),
        ["messages", "status", "upbit"]
    );
    assert_eq!(
        crate_paths(r#"#[rtype(result = "Result<(), crate::subscription::ChangeError>")]"#),
        ["subscription"]
    );
    assert!(crate_paths("use upbit_exporter::app;").is_empty());
}
