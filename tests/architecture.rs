//! The crate's modules form layers: no import cycles at any level of `src/`.
//!
//! A module (a file, or a directory with its `mod.rs`) depends on another when its code
//! (tests aside) names something in it, through `use` or a path in place, macros
//! included. A name reached through a parent's `pub use` counts as a use of the module
//! that defines it, so a facade does not hide or create a cycle. A parent and its own
//! children may use each other (the parent declares them); among siblings at every
//! level — `clinical/dose.rs` and `clinical/units.rs`, `fhir/client/` and
//! `fhir/writeback/`, `intake/` and `queue/` — one direction only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use syn::visit::Visit;

type ModPath = Vec<String>;

struct Module {
    ast: syn::File,
}

fn modules() -> BTreeMap<ModPath, Module> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let relative = path
                .strip_prefix(&root)
                .expect("under src")
                .with_extension("");
            let mut name: ModPath = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if name.last().map(String::as_str) == Some("mod") {
                name.pop();
            }
            if name == ["lib"] || name == ["main"] {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            let ast = syn::parse_file(&text)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
            out.insert(name, Module { ast });
        }
    }
    out
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg") && {
            let mut test = false;
            let _ = a.parse_nested_meta(|meta| {
                test |= meta.path.is_ident("test");
                Ok(())
            });
            test
        }
    })
}

/// Every path a `use` tree names, as written (`crate`, `super`, `self` or a name first).
fn use_paths(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_paths(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let mut path = prefix.clone();
            path.push(n.ident.to_string());
            out.push(path);
        }
        syn::UseTree::Rename(r) => {
            let mut path = prefix.clone();
            path.push(r.ident.to_string());
            out.push(path);
        }
        syn::UseTree::Glob(_) => out.push(prefix.clone()),
        syn::UseTree::Group(g) => {
            for item in &g.items {
                use_paths(item, prefix, out);
            }
        }
    }
}

/// A path as written in `module`, made absolute from the crate root; `None` for paths
/// outside the crate (std, dependencies, local names).
fn absolute(module: &[String], path: &[String]) -> Option<ModPath> {
    // A `mod.rs` is already named by its directory, so `super` is one step up from
    // a file and from a directory alike.
    let mut here: ModPath = module.to_vec();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            here.clear();
            rest = rest.get(1..)?;
        }
        Some("self") => rest = rest.get(1..)?,
        Some("super") => {
            while rest.first().map(String::as_str) == Some("super") {
                here.pop()?;
                rest = rest.get(1..)?;
            }
        }
        _ => return None,
    }
    here.extend(rest.iter().cloned());
    Some(here)
}

/// `crate::a::b` and `super::a` sequences inside a macro's tokens (`format!`, `json!`).
fn macro_paths(tokens: &str) -> Vec<Vec<String>> {
    let words: Vec<&str> = tokens.split_whitespace().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        if matches!(words[i], "crate" | "super") && words.get(i + 1) == Some(&"::") {
            let mut path = vec![words[i].to_string()];
            let mut j = i + 2;
            while let Some(word) = words.get(j) {
                let ident = word.trim_end_matches(|c: char| !c.is_alphanumeric() && c != '_');
                if ident.is_empty() {
                    break;
                }
                path.push(ident.to_string());
                if ident.len() != word.len() || words.get(j + 1) != Some(&"::") {
                    break;
                }
                j += 2;
            }
            out.push(path);
            i = j;
        }
        i += 1;
    }
    out
}

/// What one file's code names (non-`pub` uses and paths in place) and what it
/// re-exports (`pub use`), test modules left out.
#[derive(Default)]
struct Names {
    uses: Vec<Vec<String>>,
    reexports: Vec<Vec<String>>,
}

impl<'ast> Visit<'ast> for Names {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if !is_test_only(&item.attrs) {
            syn::visit::visit_item_mod(self, item);
        }
    }
    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if !is_test_only(&item.attrs) {
            syn::visit::visit_item_fn(self, item);
        }
    }
    fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
        if !is_test_only(&item.attrs) {
            syn::visit::visit_item_impl(self, item);
        }
    }
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        if is_test_only(&item.attrs) {
            return;
        }
        let target = if matches!(item.vis, syn::Visibility::Inherited) {
            &mut self.uses
        } else {
            &mut self.reexports
        };
        use_paths(&item.tree, &mut Vec::new(), target);
    }
    fn visit_path(&mut self, path: &'ast syn::Path) {
        self.uses
            .push(path.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, path);
    }
    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.uses.extend(macro_paths(&mac.tokens.to_string()));
        syn::visit::visit_macro(self, mac);
    }
}

struct Graph {
    /// module -> module it depends on -> one path that shows it.
    edges: BTreeMap<ModPath, BTreeMap<ModPath, String>>,
}

fn graph() -> Graph {
    let modules = modules();
    let names: BTreeMap<&ModPath, Names> = modules
        .iter()
        .map(|(path, module)| {
            let mut names = Names::default();
            names.visit_file(&module.ast);
            (path, names)
        })
        .collect();
    // (module, name) -> where a `pub use` in that module points.
    let mut reexports: BTreeMap<(ModPath, String), ModPath> = BTreeMap::new();
    for (module, names) in &names {
        for path in &names.reexports {
            let Some(last) = path.last() else { continue };
            let full = absolute(module, path)
                .unwrap_or_else(|| module.iter().chain(path).cloned().collect());
            reexports.insert(((*module).clone(), last.clone()), full);
        }
    }
    let resolve = |path: ModPath| -> Option<ModPath> {
        let mut path = path;
        for _ in 0..10 {
            let module = (1..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|prefix| modules.contains_key(prefix))?;
            match path
                .get(module.len())
                .and_then(|name| reexports.get(&(module.clone(), name.clone())))
            {
                Some(target) => {
                    let mut next = target.clone();
                    next.extend(path[module.len() + 1..].iter().cloned());
                    path = next;
                }
                None => return Some(module),
            }
        }
        None
    };
    let mut edges: BTreeMap<ModPath, BTreeMap<ModPath, String>> = BTreeMap::new();
    for (module, names) in &names {
        let entry = edges.entry((*module).clone()).or_default();
        for path in &names.uses {
            let Some(full) = absolute(module, path) else {
                continue;
            };
            if let Some(target) = resolve(full) {
                if &target != *module {
                    entry.entry(target).or_insert_with(|| path.join("::"));
                }
            }
        }
    }
    Graph { edges }
}

/// Cycles among the children of `parent`: each child stands for its whole subtree.
fn sibling_cycles(graph: &Graph, parent: &[String]) -> Vec<String> {
    let depth = parent.len();
    let child_of = |m: &ModPath| -> Option<String> {
        (m.len() > depth && m[..depth] == *parent).then(|| m[depth].clone())
    };
    let mut between: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for (from, targets) in &graph.edges {
        let Some(a) = child_of(from) else { continue };
        for (to, shown_by) in targets {
            let Some(b) = child_of(to) else { continue };
            if a != b {
                between
                    .entry(a.clone())
                    .or_default()
                    .entry(b)
                    .or_default()
                    .push(format!(
                        "{} -> {} ({shown_by})",
                        from.join("/"),
                        to.join("/")
                    ));
            }
        }
    }
    // Which children reach which (transitive closure, small graphs).
    let children: BTreeSet<String> = between
        .iter()
        .flat_map(|(a, bs)| std::iter::once(a.clone()).chain(bs.keys().cloned()))
        .collect();
    let mut reach: BTreeMap<String, BTreeSet<String>> = children
        .iter()
        .map(|c| {
            let direct = between
                .get(c)
                .map(|bs| bs.keys().cloned().collect())
                .unwrap_or_default();
            (c.clone(), direct)
        })
        .collect();
    loop {
        let mut grew = false;
        for c in &children {
            let via: BTreeSet<String> = reach[c]
                .iter()
                .flat_map(|d| reach[d].iter().cloned())
                .collect();
            let set = reach.get_mut(c).expect("child");
            let before = set.len();
            set.extend(via);
            grew |= set.len() > before;
        }
        if !grew {
            break;
        }
    }
    let mut found = Vec::new();
    for (a, bs) in &between {
        for (b, shown) in bs {
            if reach[b].contains(a) {
                found.push(format!(
                    "{}: {a} -> {b}, which leads back: {}",
                    if parent.is_empty() {
                        "src".into()
                    } else {
                        format!("src/{}", parent.join("/"))
                    },
                    shown.join("; ")
                ));
            }
        }
    }
    found
}

#[test]
fn no_import_cycles_at_any_level() {
    let graph = graph();
    let parents: BTreeSet<ModPath> = graph
        .edges
        .keys()
        .flat_map(|m| (0..m.len()).map(|n| m[..n].to_vec()))
        .collect();
    let cycles: Vec<String> = parents
        .iter()
        .flat_map(|p| sibling_cycles(&graph, p))
        .collect();
    assert!(
        cycles.is_empty(),
        "import cycles (move the shared part to a module both can use):\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_check_sees_the_dependencies_it_must() {
    // A check that saw nothing would pass: these edges exist and must be found,
    // through a `use`, a path in place, a macro and a parent's `pub use`.
    let graph = graph();
    let depends = |a: &str, b: &str| {
        let a: ModPath = a.split('/').map(String::from).collect();
        let b: ModPath = b.split('/').map(String::from).collect();
        graph.edges.get(&a).is_some_and(|t| t.contains_key(&b))
    };
    assert!(depends("queue", "work"), "queue uses crate::work::WorkItem");
    assert!(depends("clinical/narrative", "clinical/assessment"));
    assert!(
        depends("clinical/sanity", "clinical/numbers"),
        "sanity calls super::numbers::fmt inside format!"
    );
    assert!(
        depends("clinical/dose", "clinical/knowledge/drug_product"),
        "dose uses super::knowledge::StrengthUnit, re-exported from drug_product"
    );
    assert!(!depends("clinical/numbers", "clinical/dose"));
}

#[test]
fn macro_paths_are_read_from_tokens() {
    assert_eq!(
        macro_paths("\"{}\" , super :: numbers :: fmt (value) , crate :: a :: B"),
        vec![
            vec!["super".to_string(), "numbers".into(), "fmt".into()],
            vec!["crate".to_string(), "a".into(), "B".into()],
        ]
    );
}
