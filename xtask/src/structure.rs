//! Structure checks, run with the unit tests (`cargo xtask test`): no Rust
//! file in the workspace is longer than [`MAX_LINES`], and the modules of a
//! crate do not import each other in a cycle.
//!
//! Layering: an import from module A to module B is an edge between the two
//! children of their deepest common ancestor, so `output::report` using
//! `model::aggregate` makes `output` depend on `model`, and `model::spans`
//! using `model::hist` makes `model::spans` depend on its sibling
//! `model::hist`. A module using its own descendant, or items of an ancestor
//! (`super::*`), is not a layering edge. Siblings that depend on each other
//! (a strongly connected component of more than one module) are a cycle.
//!
//! The imports come from [`scan`], a hand-written scan of `crate::`,
//! `super::` and `self::` paths (in `use` trees and inline in code), not from
//! a parser: `syn` would be a big build dependency of xtask for what is a line
//! scan. Paths without one of those prefixes (`use child::X`) can only name
//! the module's own children, so they are never layering edges and are
//! skipped. Imports inside a file's inline modules (`mod tests`) count as the
//! file's. Not handled: `#[path]` attributes and `include!`.
mod scan;

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    fmt, fs,
    path::{Path, PathBuf},
};

use scan::{ModPath, crate_paths};

pub const MAX_LINES: usize = 600;

/// One source file of a crate's module tree.
pub struct SourceFile {
    pub module: ModPath,
    /// The file's path as shown in messages.
    pub shown: String,
    pub source: String,
}

/// Where one module imports another: a file, a line and its text.
#[derive(Clone, Debug)]
pub struct Import {
    pub file: String,
    pub line: usize,
    pub text: String,
}

/// Sibling modules that import each other.
#[derive(Debug)]
pub struct Cycle {
    pub krate: String,
    /// The modules, sorted.
    pub modules: Vec<String>,
    /// A shortest loop through the first module, which is repeated at the end.
    pub path: Vec<String>,
    /// Every edge between the modules, with one import line each.
    pub edges: Vec<(String, String, Import)>,
}

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.join(" → ");
        if self.edges.len() == self.modules.len() {
            writeln!(f, "{}: import cycle {path}", self.krate)?;
        } else {
            let modules = self.modules.join(", ");
            writeln!(f, "{}: import cycles among {modules} (one is {path})", self.krate)?;
        }
        for (from, to, import) in &self.edges {
            writeln!(f, "    {from} → {to}: {}:{}: {}", import.file, import.line, import.text)?;
        }
        Ok(())
    }
}

/// Every `.rs` file under `dir`, sorted, skipping hidden directories and
/// cargo's build directories (`target/`, or any holding a `CACHEDIR.TAG`).
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = fs::read_dir(&dir).unwrap_or_else(|err| panic!("cannot read {}: {err}", dir.display()));
        for entry in entries {
            let path = entry.unwrap_or_else(|err| panic!("cannot read {}: {err}", dir.display())).path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if path.is_dir() {
                let build_dir = name == "target" || path.join("CACHEDIR.TAG").exists();
                if !name.starts_with('.') && !build_dir {
                    pending.push(path);
                }
            } else if name.ends_with(".rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The module a file under a crate's source directory is: `lib.rs` and
/// `main.rs` are the root, `a.rs` and `a/mod.rs` are `a`, `a/b.rs` is `a::b`.
pub fn module_path(relative: &Path) -> ModPath {
    let mut parts: ModPath = relative.iter().map(|part| part.to_string_lossy().into_owned()).collect();
    let Some(last) = parts.pop() else { return parts };
    let stem = last.strip_suffix(".rs").unwrap_or(&last);
    let is_root = parts.is_empty() && (stem == "lib" || stem == "main");
    if stem != "mod" && !is_root {
        parts.push(stem.to_owned());
    }
    parts
}

/// The module trees of the workspace: for every crate (a directory with a
/// `Cargo.toml` and a `src/`), the files of `src/` outside `src/bin/`, and one
/// tree per binary in `src/bin/` (`x.rs`, or `x/main.rs` with its modules).
pub fn module_trees(root: &Path) -> Vec<(String, Vec<SourceFile>)> {
    let mut crates: Vec<PathBuf> = fs::read_dir(root)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", root.display()))
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|dir| dir.join("Cargo.toml").is_file() && dir.join("src").is_dir())
        .collect();
    crates.sort();
    let mut trees: BTreeMap<String, Vec<SourceFile>> = BTreeMap::new();
    for dir in crates {
        let krate = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let src = dir.join("src");
        let bin = src.join("bin");
        for path in rust_files(&src) {
            let (tree, module) = match path.strip_prefix(&bin) {
                Ok(in_bin) => {
                    let mut parts = in_bin.iter();
                    let first = parts.next().unwrap_or_default().to_string_lossy();
                    let name = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
                    (format!("{krate} (bin {name})"), module_path(parts.as_path()))
                }
                Err(_) => (krate.clone(), module_path(path.strip_prefix(&src).expect("under src"))),
            };
            let source = read(&path);
            let shown = path.strip_prefix(root).unwrap_or(&path).display().to_string();
            trees.entry(tree).or_default().push(SourceFile { module, shown, source });
        }
    }
    trees.into_iter().collect()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

/// The layering edge an import from `from` to `to` is: their deepest common
/// ancestor and its two children. None between a module and itself or between
/// an ancestor and its descendant.
pub fn layering_edge(from: &[String], to: &[String]) -> Option<(ModPath, String, String)> {
    let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
    if common == from.len() || common == to.len() {
        return None;
    }
    Some((from[..common].to_vec(), from[common].clone(), to[common].clone()))
}

/// The import cycles among sibling modules of one crate's module tree.
pub fn import_cycles(krate: &str, files: &[SourceFile]) -> Vec<Cycle> {
    let modules: BTreeSet<&[String]> = files.iter().map(|f| f.module.as_slice()).collect();
    // Per parent module, the edges between its children, one import each (the first).
    let mut levels: BTreeMap<ModPath, BTreeMap<(String, String), Import>> = BTreeMap::new();
    for file in files {
        let lines: Vec<&str> = file.source.lines().collect();
        for (path, line) in crate_paths(&file.source, &file.module) {
            // The module a path names is its longest prefix that is a module (the root at least).
            let mut prefixes = (0..=path.len()).rev().map(|n| &path[..n]);
            let target = prefixes.find(|p| modules.contains(p)).unwrap_or(&[]);
            let Some((parent, from, to)) = layering_edge(&file.module, target) else { continue };
            let text = lines.get(line - 1).map_or("", |l| l.trim()).to_owned();
            let import = Import { file: file.shown.clone(), line, text };
            levels.entry(parent).or_default().entry((from, to)).or_insert(import);
        }
    }
    let mut cycles = Vec::new();
    for (parent, edges) in levels {
        let name = |child: &str| parent.iter().map(String::as_str).chain([child]).collect::<Vec<_>>().join("::");
        for component in strongly_connected(&edges).into_iter().filter(|c| c.len() > 1) {
            let path = shortest_loop(&edges, &component).iter().map(|m| name(m)).collect();
            let inside = edges.iter().filter(|((from, to), _)| component.contains(from) && component.contains(to));
            let inside = inside.map(|((from, to), import)| (name(from), name(to), import.clone())).collect();
            let modules = component.iter().map(|m| name(m)).collect();
            cycles.push(Cycle { krate: krate.to_owned(), modules, path, edges: inside });
        }
    }
    cycles
}

/// Tarjan's strongly connected components of a small graph given by its edges.
fn strongly_connected(edges: &BTreeMap<(String, String), Import>) -> Vec<BTreeSet<String>> {
    struct Tarjan<'a> {
        next: BTreeMap<&'a str, Vec<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        components: Vec<BTreeSet<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let index = self.index.len();
            self.index.insert(v, index);
            self.low.insert(v, index);
            self.stack.push(v);
            for w in self.next.get(v).cloned().unwrap_or_default() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    self.low.insert(v, self.low[v].min(self.low[w]));
                } else if self.stack.contains(&w) {
                    self.low.insert(v, self.low[v].min(self.index[w]));
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = BTreeSet::new();
                while let Some(w) = self.stack.pop() {
                    component.insert(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                self.components.push(component);
            }
        }
    }
    let mut tarjan = Tarjan {
        next: BTreeMap::new(),
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        components: Vec::new(),
    };
    for (from, to) in edges.keys() {
        tarjan.next.entry(from.as_str()).or_default().push(to.as_str());
        tarjan.next.entry(to.as_str()).or_default();
    }
    let nodes: Vec<&str> = tarjan.next.keys().copied().collect();
    for v in nodes {
        if !tarjan.index.contains_key(v) {
            tarjan.visit(v);
        }
    }
    tarjan.components
}

/// A shortest loop from the first module of `component` back to it, staying
/// inside the component; the first module is repeated at the end.
fn shortest_loop(edges: &BTreeMap<(String, String), Import>, component: &BTreeSet<String>) -> Vec<String> {
    let start = component.first().expect("a component has a module").clone();
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start.as_str()]);
    while let Some(v) = queue.pop_front() {
        for (_, to) in edges.keys().filter(|(from, to)| from == v && component.contains(to)) {
            if to == &start {
                let mut path = vec![start.clone()];
                let mut at = v;
                while at != start {
                    path.push(at.to_owned());
                    at = came_from[at];
                }
                path.push(start.clone());
                path.reverse();
                return path;
            }
            if !came_from.contains_key(to.as_str()) {
                came_from.insert(to.as_str(), v);
                queue.push_back(to.as_str());
            }
        }
    }
    unreachable!("a strongly connected component of two or more modules has a loop")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask is in the workspace").to_path_buf()
    }

    #[test]
    fn no_file_over_600_lines() {
        let root = workspace_root();
        let mut long = Vec::new();
        for path in rust_files(&root) {
            let lines = read(&path).lines().count();
            if lines > MAX_LINES {
                long.push(format!("    {}: {lines} lines", path.strip_prefix(&root).unwrap_or(&path).display()));
            }
        }
        assert!(long.is_empty(), "Rust files over {MAX_LINES} lines (split them into modules):\n{}\n", long.join("\n"));
    }

    #[test]
    fn no_import_cycles() {
        let cycles: Vec<String> = module_trees(&workspace_root())
            .iter()
            .flat_map(|(krate, files)| import_cycles(krate, files))
            .map(|cycle| cycle.to_string())
            .collect();
        assert!(
            cycles.is_empty(),
            "modules that import each other (make one of each cycle's imports go the other way, \
             or move what both need into a module below them):\n{}",
            cycles.join("\n")
        );
    }

    /// Source files from (path under src/, source) pairs.
    fn files(sources: &[(&str, &str)]) -> Vec<SourceFile> {
        sources
            .iter()
            .map(|(path, source)| SourceFile {
                module: module_path(Path::new(path)),
                shown: format!("src/{path}"),
                source: source.to_string(),
            })
            .collect()
    }

    #[test]
    fn module_paths() {
        assert_eq!(module_path(Path::new("lib.rs")), ModPath::new());
        assert_eq!(module_path(Path::new("main.rs")), ModPath::new());
        assert_eq!(module_path(Path::new("a.rs")), ["a"]);
        assert_eq!(module_path(Path::new("a/mod.rs")), ["a"]);
        assert_eq!(module_path(Path::new("a/b.rs")), ["a", "b"]);
        assert_eq!(module_path(Path::new("a/main.rs")), ["a", "main"]);
    }

    #[test]
    fn two_modules_importing_each_other_are_a_cycle() {
        let files = files(&[
            ("main.rs", "mod a;\nmod b;\n"),
            ("a.rs", "use std::fmt;\nuse crate::b::B;\n"),
            ("b.rs", "fn f() {\n    crate::a::g();\n}\n"),
        ]);
        let cycles = import_cycles("demo", &files);
        assert_eq!(cycles.len(), 1, "{cycles:?}");
        assert_eq!(cycles[0].path, ["a", "b", "a"]);
        let edges = cycles[0].edges.iter();
        let shown: Vec<String> = edges.map(|(f, t, i)| format!("{f}→{t} {}:{} {}", i.file, i.line, i.text)).collect();
        assert_eq!(shown, ["a→b src/a.rs:2 use crate::b::B;", "b→a src/b.rs:2 crate::a::g();"]);
        assert!(cycles[0].to_string().starts_with("demo: import cycle a → b → a\n"));
    }

    #[test]
    fn a_dag_has_no_cycle() {
        let files = files(&[
            ("lib.rs", "mod a;\nmod b;\nmod c;\npub use crate::a::A;\n"),
            ("a.rs", "use crate::{b::B, c::C};\n"),
            ("b.rs", "use crate::c::C;\n"),
            ("c.rs", "pub struct C;\nuse crate::Root;\n// use crate::a::A;\n/// Unlike [`crate::b::B`].\n"),
        ]);
        assert!(import_cycles("demo", &files).is_empty());
    }

    #[test]
    fn a_longer_cycle_is_named_in_order() {
        let files = files(&[
            ("a.rs", "use crate::b::B;\n"),
            ("b.rs", "use crate::c::C;\n"),
            ("c.rs", "use crate::a::A;\n"),
            ("d.rs", "use crate::a::A;\n"),
        ]);
        let cycles = import_cycles("demo", &files);
        assert_eq!(cycles.len(), 1, "{cycles:?}");
        assert_eq!(cycles[0].path, ["a", "b", "c", "a"]);
        assert_eq!(cycles[0].edges.len(), 3);
        assert!(cycles[0].to_string().starts_with("demo: import cycle a → b → c → a\n"));
    }

    #[test]
    fn a_component_with_several_loops_names_its_modules() {
        let files = files(&[
            ("a.rs", "use crate::b::B;\n"),
            ("b.rs", "use crate::{a::A, c::C};\n"),
            ("c.rs", "use crate::a::A;\n"),
        ]);
        let cycles = import_cycles("demo", &files);
        assert_eq!(cycles.len(), 1, "{cycles:?}");
        assert_eq!(cycles[0].modules, ["a", "b", "c"]);
        assert!(cycles[0].to_string().starts_with("demo: import cycles among a, b, c (one is a → b → a)\n"));
    }

    #[test]
    fn imports_between_an_ancestor_and_its_descendant_are_not_edges() {
        let files = files(&[
            ("main.rs", "mod a;\nuse crate::a::b::B;\n"),
            ("a/mod.rs", "mod b;\nuse self::b::B;\nuse crate::a::b::f;\nuse b::g;\npub struct A;\n"),
            ("a/b.rs", "use super::A;\nuse crate::a::A as Same;\nfn f() { super::super::root(); }\n"),
            ("a/c.rs", "#[cfg(test)]\nmod tests {\n    use super::*;\n    use super::super::A;\n}\n"),
        ]);
        assert!(import_cycles("demo", &files).is_empty());
        assert_eq!(layering_edge(&["a".into()], &["a".into(), "b".into()]), None);
        assert_eq!(layering_edge(&["a".into(), "b".into()], &["a".into()]), None);
        assert_eq!(layering_edge(&["a".into()], &["a".into()]), None);
    }

    #[test]
    fn edges_are_between_the_children_of_the_deepest_common_ancestor() {
        let files = files(&[
            ("output/mod.rs", "mod report;\n"),
            ("output/report.rs", "use crate::model::aggregate::Totals;\n"),
            ("model/mod.rs", "mod aggregate;\nmod hist;\nmod spans;\n"),
            ("model/aggregate.rs", "fn f() -> crate::output::Format { todo!() }\n"),
            ("model/spans.rs", "use super::hist::Hist;\n"),
            ("model/hist.rs", "use crate::model::spans::Span;\n"),
        ]);
        let cycles = import_cycles("demo", &files);
        let loops: Vec<String> = cycles.iter().map(|c| c.path.join(" → ")).collect();
        assert_eq!(loops, ["model → output → model", "model::hist → model::spans → model::hist"]);
        let (from, to, import) = &cycles[0].edges[0];
        let edge = (from.as_str(), to.as_str(), import.file.as_str(), import.line);
        assert_eq!(edge, ("model", "output", "src/model/aggregate.rs", 1));
    }
}
