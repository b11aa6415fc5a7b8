//! The import graph of a crate's modules, read from its source: one node per module file, an
//! edge wherever a module names another through `crate::`, `super::`, `self::` or the name of
//! a child module, in a `use` or in a path in code.
//!
//! Comments, string and character literals and `#[cfg(test)] mod ... { }` blocks are left out
//! first: tests may reach anywhere, and the architecture is what the code itself imports.
//! Inline modules other than tests are read as part of their file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The name of the crate's root module in the graph.
pub const ROOT: &str = "crate";

/// Modules and the modules each one imports.
#[derive(Debug, Default)]
pub struct ModuleGraph {
    /// Every module (`crate`, `a`, `a::b`, ...) with the modules it imports, itself left out.
    edges: BTreeMap<String, BTreeSet<String>>,
}

impl ModuleGraph {
    /// Reads the crate whose root file is `root` (`src/lib.rs`) and every module file it
    /// declares, recursively.
    pub fn read(root: &Path) -> Result<ModuleGraph, String> {
        let mut files = BTreeMap::new();
        collect(root, &[], true, &mut files)?;
        let known: BTreeSet<Vec<String>> = files.keys().cloned().collect();
        let mut graph = ModuleGraph::default();
        for (module, file) in &files {
            let targets = file
                .paths
                .iter()
                .filter_map(|path| resolve(module, &file.children, path, &known))
                .filter(|target| target != module)
                .map(|target| name(&target))
                .collect();
            graph.edges.insert(name(module), targets);
        }
        Ok(graph)
    }

    /// Every module, in name order.
    pub fn modules(&self) -> impl Iterator<Item = &str> {
        self.edges.keys().map(String::as_str)
    }

    /// The modules `module` imports.
    pub fn imports(&self, module: &str) -> impl Iterator<Item = &str> {
        self.edges
            .get(module)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// A circle of imports, as the modules along it with the first repeated at the end; `None`
    /// when imports flow one way.
    pub fn cycle(&self) -> Option<Vec<String>> {
        // Depth-first search; a module met again while still on the path closes a circle.
        fn visit<'a>(
            graph: &'a ModuleGraph,
            module: &'a str,
            path: &mut Vec<&'a str>,
            done: &mut BTreeSet<&'a str>,
        ) -> Option<Vec<String>> {
            if let Some(at) = path.iter().position(|m| *m == module) {
                let mut circle: Vec<String> = path[at..].iter().map(|m| (*m).to_owned()).collect();
                circle.push(module.to_owned());
                return Some(circle);
            }
            if !done.insert(module) {
                return None;
            }
            path.push(module);
            for next in graph.imports(module) {
                if let Some(circle) = visit(graph, next, path, done) {
                    return Some(circle);
                }
            }
            path.pop();
            None
        }
        let mut done = BTreeSet::new();
        self.modules()
            .find_map(|m| visit(self, m, &mut Vec::new(), &mut done))
    }

    /// Checks that the modules of each layer (a set of top-level modules, layers in the order
    /// data flows through them) import only from their own layer or earlier ones, and that no
    /// module imports the crate root. Modules outside the layers are not constrained.
    pub fn check_layers(&self, layers: &[&[&str]]) -> Result<(), String> {
        let layer = |module: &str| {
            let top = module.split("::").next().unwrap_or(module);
            layers.iter().position(|l| l.contains(&top))
        };
        let mut wrong = String::new();
        for from in self.modules() {
            for to in self.imports(from) {
                if to == ROOT {
                    let _ = writeln!(wrong, "{from} imports the crate root");
                }
                if let (Some(a), Some(b)) = (layer(from), layer(to)) {
                    if b > a {
                        let _ = writeln!(wrong, "{from} imports {to}, of a later layer");
                    }
                }
            }
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(wrong)
        }
    }

    /// Panics, naming each import that goes against [`ModuleGraph::check_layers`].
    pub fn assert_layers(&self, layers: &[&[&str]]) {
        if let Err(wrong) = self.check_layers(layers) {
            panic!("imports against the flow of the layers {layers:?}:\n{wrong}");
        }
    }

    /// Panics, naming the circle, unless imports flow one way.
    pub fn assert_acyclic(&self) {
        if let Some(circle) = self.cycle() {
            panic!(
                "modules import each other in a circle: {}",
                circle.join(" -> ")
            );
        }
    }
}

/// Panics unless the modules of the crate at `manifest_dir` (`src/lib.rs` and every module it
/// declares) import one way: no circle, and no import against the flow of `layers` (see
/// [`ModuleGraph::check_layers`]).
pub fn assert_one_way(manifest_dir: &str, layers: &[&[&str]]) {
    let root = Path::new(manifest_dir).join("src/lib.rs");
    let graph = ModuleGraph::read(&root).unwrap_or_else(|e| panic!("{e}"));
    graph.assert_acyclic();
    graph.assert_layers(layers);
}

/// What one module file says.
struct File {
    /// Child modules it declares (`mod name;`).
    children: Vec<String>,
    /// Every path it names that starts at `crate`, `super`, `self` or a child module.
    paths: Vec<Vec<String>>,
}

/// Reads the module file at `path` (module `module`) and, recursively, its children.
fn collect(
    path: &Path,
    module: &[String],
    owns_dir: bool,
    files: &mut BTreeMap<Vec<String>, File>,
) -> Result<(), String> {
    let source = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let code = drop_test_modules(&strip(&source));
    let children = child_modules(&code);
    let paths = named_paths(&code, &children);
    // A child of `a.rs` lives in `a/`; a child of `lib.rs` or `a/mod.rs` beside it.
    let dir: PathBuf = match (owns_dir, path.parent()) {
        (true, Some(parent)) => parent.to_path_buf(),
        (false, Some(parent)) => parent.join(path.file_stem().unwrap_or_default()),
        (_, None) => PathBuf::new(),
    };
    for child in &children {
        let flat = dir.join(format!("{child}.rs"));
        let (file, owns) = if flat.exists() {
            (flat, false)
        } else {
            (dir.join(child).join("mod.rs"), true)
        };
        let mut child_module = module.to_vec();
        child_module.push(child.clone());
        collect(&file, &child_module, owns, files)?;
    }
    files.insert(module.to_vec(), File { children, paths });
    Ok(())
}

/// `[]` → `crate`, `[a, b]` → `a::b`.
fn name(module: &[String]) -> String {
    if module.is_empty() {
        ROOT.to_owned()
    } else {
        module.join("::")
    }
}

/// The module a path named in `module` leads to: the longest known prefix of its absolute
/// form. `None` for paths into other crates.
fn resolve(
    module: &[String],
    children: &[String],
    path: &[String],
    known: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let (first, rest) = path.split_first()?;
    let mut absolute: Vec<String> = match first.as_str() {
        "crate" => Vec::new(),
        "self" => module.to_vec(),
        "super" => module[..module.len().checked_sub(1)?].to_vec(),
        child if children.iter().any(|c| c == child) => {
            let mut m = module.to_vec();
            m.push(child.to_owned());
            m
        }
        _ => return None,
    };
    let mut rest = rest;
    while rest.first().is_some_and(|s| s == "super") {
        absolute.pop()?;
        rest = &rest[1..];
    }
    absolute.extend(rest.iter().filter(|s| *s != "self").cloned());
    (0..=absolute.len())
        .rev()
        .map(|n| absolute[..n].to_vec())
        .find(|prefix| known.contains(prefix))
}

/// The source with comments and string and character literals blanked out (newlines kept).
pub fn strip(source: &str) -> String {
    let c: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let blank = |out: &mut String, from: &[char]| {
        out.extend(from.iter().map(|&ch| if ch == '\n' { '\n' } else { ' ' }));
    };
    while i < c.len() {
        let end = literal_or_comment_end(&c, i);
        if end > i {
            blank(&mut out, &c[i..end]);
            i = end;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// Where the comment or literal starting at `i` ends; `i` when none starts there.
fn literal_or_comment_end(c: &[char], i: usize) -> usize {
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    let ident_before = i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_');
    match (at(i), at(i + 1)) {
        ('/', '/') => (i..c.len()).find(|&k| c[k] == '\n').unwrap_or(c.len()),
        ('/', '*') => block_comment_end(c, i),
        ('"', _) => string_end(c, i + 1),
        ('b', '"') if !ident_before => string_end(c, i + 2),
        ('r' | 'b', _) if !ident_before => raw_string_end(c, i).unwrap_or(i),
        ('\'', '\\') => (i + 2..c.len())
            .find(|&k| c[k] == '\'')
            .map_or(c.len(), |k| k + 1),
        // A one-character literal; anything else after a quote is a lifetime.
        ('\'', _) if at(i + 2) == '\'' => i + 3,
        _ => i,
    }
}

fn block_comment_end(c: &[char], i: usize) -> usize {
    let mut depth = 0;
    let mut k = i;
    while k + 1 < c.len() {
        match (c[k], c[k + 1]) {
            ('/', '*') => {
                depth += 1;
                k += 2;
            }
            ('*', '/') => {
                depth -= 1;
                k += 2;
                if depth == 0 {
                    return k;
                }
            }
            _ => k += 1,
        }
    }
    c.len()
}

/// The end of a string whose body starts at `k` (escapes honoured).
fn string_end(c: &[char], mut k: usize) -> usize {
    while k < c.len() {
        match c[k] {
            '\\' => k += 2,
            '"' => return k + 1,
            _ => k += 1,
        }
    }
    c.len()
}

/// `r"..."`, `r#"..."#`, `br#"..."#`: the end, or `None` when no raw string starts at `i`.
fn raw_string_end(c: &[char], i: usize) -> Option<usize> {
    let mut k = i;
    if c.get(k) == Some(&'b') {
        k += 1;
    }
    if c.get(k) != Some(&'r') {
        return None;
    }
    k += 1;
    let hashes = c[k..].iter().take_while(|&&ch| ch == '#').count();
    k += hashes;
    if c.get(k) != Some(&'"') {
        return None;
    }
    let close: Vec<char> = std::iter::once('"')
        .chain(std::iter::repeat_n('#', hashes))
        .collect();
    (k + 1..c.len())
        .find(|&e| c[e..].starts_with(&close))
        .map(|e| e + close.len())
        .or(Some(c.len()))
}

/// The code without its `#[cfg(test)] mod name { ... }` blocks.
fn drop_test_modules(code: &str) -> String {
    let mut out = code.to_owned();
    while let Some(at) = out.find("#[cfg(test)]") {
        let after = &out[at + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        let is_mod = trimmed.starts_with("mod ") || trimmed.starts_with("pub mod ");
        let Some(open) = after.find('{').filter(|_| is_mod) else {
            // An attribute on something else: leave it, look further on.
            out.replace_range(at..at + 2, "  ");
            continue;
        };
        let body_start = at + "#[cfg(test)]".len() + open;
        let mut depth = 0;
        let mut end = out.len();
        for (k, ch) in out[body_start..].char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = body_start + k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.replace_range(at..end, "");
    }
    out
}

/// The names of `mod name;` declarations.
fn child_modules(code: &str) -> Vec<String> {
    code.split(';')
        .filter_map(|statement| {
            let words: Vec<&str> = statement.split_whitespace().collect();
            let at = words.iter().rposition(|w| *w == "mod")?;
            (at + 2 == words.len()).then(|| words[at + 1].to_owned())
        })
        .filter(|name| name.chars().all(|ch| ch.is_alphanumeric() || ch == '_'))
        .collect()
}

fn is_ident(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

/// Every path in `code` that starts at `crate`, `super`, `self` or a child module, with `use`
/// groups expanded: `crate::{a::X, b}` gives `[crate, a, X]` and `[crate, b]`.
fn named_paths(code: &str, children: &[String]) -> Vec<Vec<String>> {
    let c: Vec<char> = code.chars().collect();
    let mut paths = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let starts_ident = is_ident(c[i]) && (i == 0 || !is_ident(c[i - 1]));
        let after_path_sep = i >= 2 && c[i - 1] == ':' && c[i - 2] == ':';
        if !starts_ident || after_path_sep {
            i += 1;
            continue;
        }
        let word: String = c[i..].iter().take_while(|&&ch| is_ident(ch)).collect();
        let end = i + word.chars().count();
        let anchored =
            matches!(word.as_str(), "crate" | "super" | "self") || children.contains(&word);
        if anchored && c.get(end) == Some(&':') && c.get(end + 1) == Some(&':') {
            let mut pos = i;
            paths.extend(use_tree(&c, &mut pos));
            i = pos.max(end);
        } else {
            i = end;
        }
    }
    paths
}

/// Parses a path or `use` tree at `pos`: `a::b::{c, d::*}`.
fn use_tree(c: &[char], pos: &mut usize) -> Vec<Vec<String>> {
    let skip_ws = |pos: &mut usize| {
        while c.get(*pos).is_some_and(|ch| ch.is_whitespace()) {
            *pos += 1;
        }
    };
    skip_ws(pos);
    match c.get(*pos) {
        Some('{') => {
            *pos += 1;
            let mut all = Vec::new();
            loop {
                skip_ws(pos);
                match c.get(*pos) {
                    None => return all,
                    Some('}') => {
                        *pos += 1;
                        return all;
                    }
                    Some(',') => *pos += 1,
                    Some(_) => {
                        let before = *pos;
                        all.extend(use_tree(c, pos));
                        if *pos == before {
                            *pos += 1;
                        }
                    }
                }
            }
        }
        Some('*') => {
            *pos += 1;
            vec![Vec::new()]
        }
        _ => {
            let word: String = c[*pos..].iter().take_while(|&&ch| is_ident(ch)).collect();
            *pos += word.chars().count();
            if word.is_empty() {
                return vec![Vec::new()];
            }
            if c.get(*pos) == Some(&':') && c.get(*pos + 1) == Some(&':') {
                *pos += 2;
                let mut rest = use_tree(c, pos);
                for path in &mut rest {
                    path.insert(0, word.clone());
                }
                rest
            } else {
                vec![vec![word]]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(code: &str, children: &[&str]) -> Vec<String> {
        let children: Vec<String> = children.iter().map(|c| (*c).to_owned()).collect();
        named_paths(&drop_test_modules(&strip(code)), &children)
            .iter()
            .map(|p| p.join("::"))
            .collect()
    }

    #[test]
    fn use_groups_expand_into_one_path_each() {
        let code = "use crate::{a::{X, Y}, b::*, c};\nuse std::io;\nfn f() { crate::d::g(); }";
        assert_eq!(
            paths(code, &[]),
            [
                "crate::a::X",
                "crate::a::Y",
                "crate::b",
                "crate::c",
                "crate::d::g"
            ]
        );
    }

    #[test]
    fn comments_strings_and_test_modules_name_nothing() {
        let code = r##"
            // use crate::a;
            /* crate::b /* nested */ crate::c */
            const S: &str = "crate::d";
            const R: &str = r#"crate::e "quoted" "#;
            const C: char = '"';
            fn f<'a>(x: &'a str) { super::g(x) }
            #[cfg(test)]
            mod tests { use crate::h; fn t() { let _ = "}"; } }
            use self::child::K;
        "##;
        assert_eq!(paths(code, &["child"]), ["super::g", "self::child::K"]);
    }

    #[test]
    fn child_modules_are_declarations_only() {
        let code = "pub mod a;\nmod b;\n#[cfg(unix)]\npub(crate) mod c;\nmod tests { }";
        assert_eq!(child_modules(code), ["a", "b", "c"]);
    }

    #[test]
    fn paths_resolve_to_the_longest_known_module() {
        let known: BTreeSet<Vec<String>> = [vec![], vec!["a".into()], vec!["a".into(), "b".into()]]
            .into_iter()
            .collect();
        let here = vec!["a".to_owned(), "b".to_owned()];
        let path = |p: &str| p.split("::").map(str::to_owned).collect::<Vec<_>>();
        let resolve = |p: &str| resolve(&here, &[], &path(p), &known).map(|m| name(&m));
        assert_eq!(resolve("crate::a::b::Item").as_deref(), Some("a::b"));
        assert_eq!(resolve("super::Item").as_deref(), Some("a"));
        assert_eq!(resolve("super::super::Item").as_deref(), Some("crate"));
        assert_eq!(resolve("std::io"), None);
    }

    #[test]
    fn a_circle_is_found_and_named() {
        let mut graph = ModuleGraph::default();
        for (from, to) in [("crate", "a"), ("a", "b"), ("b", "c"), ("c", "a")] {
            graph
                .edges
                .entry(from.to_owned())
                .or_default()
                .insert(to.to_owned());
        }
        graph.edges.entry("c".to_owned()).or_default();
        assert_eq!(graph.cycle().unwrap(), ["a", "b", "c", "a"]);
        graph.edges.get_mut("c").unwrap().clear();
        assert_eq!(graph.cycle(), None);
    }

    #[test]
    fn a_later_stage_imported_by_an_earlier_one_is_refused() {
        let mut graph = ModuleGraph::default();
        for (from, to) in [
            ("plan", "schema"),
            ("render", "plan"),
            ("schema::x", "render"),
        ] {
            graph
                .edges
                .entry(from.to_owned())
                .or_default()
                .insert(to.to_owned());
        }
        let err = graph
            .check_layers(&[&["schema"], &["plan"], &["render"]])
            .unwrap_err();
        assert_eq!(err, "schema::x imports render, of a later layer\n");
        assert!(graph
            .check_layers(&[&["schema", "render"], &["plan"]])
            .is_err());
    }

    #[test]
    fn reads_a_crate_from_its_files() {
        let dir = std::env::temp_dir().join(format!("modgraph-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("b")).unwrap();
        std::fs::write(dir.join("lib.rs"), "pub mod a;\npub mod b;\npub use a::A;").unwrap();
        std::fs::write(dir.join("a.rs"), "use crate::b::c::C;\npub struct A;").unwrap();
        std::fs::write(dir.join("b/mod.rs"), "pub mod c;").unwrap();
        std::fs::write(
            dir.join("b/c.rs"),
            "pub struct C; fn f() { super::super::a::A; }",
        )
        .unwrap();
        let graph = ModuleGraph::read(&dir.join("lib.rs")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            graph.modules().collect::<Vec<_>>(),
            ["a", "b", "b::c", "crate"]
        );
        assert_eq!(graph.imports("crate").collect::<Vec<_>>(), ["a"]);
        assert_eq!(graph.imports("a").collect::<Vec<_>>(), ["b::c"]);
        assert_eq!(graph.cycle().unwrap(), ["a", "b::c", "a"]);
    }
}
