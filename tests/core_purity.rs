//! The core does no I/O and reads no clock: its modules (the table in docs/ARCHITECTURE.md)
//! may not name tokio, `std::fs`, `std::net`, `std::time::{Instant, SystemTime}` or any
//! `::now()`, nor a module outside the core, in any syntactic form (`use std::{fs, io}`,
//! `use std::fs as f`, globs, full paths in expressions, paths inside macro calls). Each core
//! module is parsed with `syn` and every path in it is checked, following `mod x;` into its
//! file; `#[cfg(test)]` items are skipped (tests may read fixtures).

use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::{self, Visit};

/// The pure core: modules (or module trees) below `src/`.
const CORE: &[&str] = &[
    "amf0",
    "batch",
    "reconnect",
    "quieted",
    "chunk",
    "duration",
    "size",
    "utc",
    "naming",
    "log_safe",
    "escape",
    "publish_token",
    "manifest",
    "exit",
    "flv",
    "mp4",
    "rtmp",
    "prometheus",
    "url_path",
    "byte_range",
    "tls_identity",
];

/// Path prefixes no core module may name.
const FORBIDDEN: &[&[&str]] = &[
    &["tokio"],
    &["std", "fs"],
    &["std", "net"],
    &["std", "time", "Instant"],
    &["std", "time", "SystemTime"],
];

#[derive(Default)]
struct Checker {
    /// Where `mod x;` in the file being read looks for `x`.
    mod_dirs: Vec<PathBuf>,
    /// Files declared by `mod x;`, still to check.
    pending: Vec<PathBuf>,
    violations: Vec<String>,
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

fn path_attr(attrs: &[syn::Attribute]) -> Option<String> {
    attrs.iter().find_map(|a| match &a.meta {
        syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

impl Checker {
    /// Records `path` (segments, a leading `::` dropped) if the core may not name it.
    /// `stands_for_below` is true for the stem of a glob or a rename (`use std::*`,
    /// `use std as s`), which lets everything below it in.
    fn judge(&mut self, path: &[String], stands_for_below: bool, what: &str) {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        let io_or_clock = FORBIDDEN
            .iter()
            .any(|f| p.starts_with(f) || (stands_for_below && f.starts_with(&p)));
        let clock_read = p.len() >= 2 && p.last() == Some(&"now");
        let outside_core = p.len() >= 2 && p[0] == "crate" && !CORE.contains(&p[1]);
        if io_or_clock || clock_read || outside_core {
            self.violations.push(format!("{what} `{}`", p.join("::")));
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                prefix.push(n.ident.to_string());
                self.judge(prefix, false, "use");
                prefix.pop();
            }
            syn::UseTree::Rename(r) => {
                prefix.push(r.ident.to_string());
                // `use std as s` would let `s::fs` through: an alias of a forbidden path's
                // ancestor counts as the forbidden path.
                self.judge(prefix, true, "use");
                prefix.pop();
            }
            syn::UseTree::Glob(_) => {
                let stem = prefix.clone();
                self.judge(&stem, true, "glob use of");
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    /// Paths inside macro calls (`format!("{}", std::fs::read(p)?)`) are tokens to syn:
    /// check every `a::b::c` run of identifiers in them.
    fn tokens(&mut self, tokens: TokenStream) {
        let mut run: Vec<String> = Vec::new();
        let mut colons = 0;
        for tt in tokens {
            match tt {
                TokenTree::Ident(i) => {
                    if colons != 2 {
                        self.macro_path(&mut run);
                    }
                    run.push(i.to_string());
                    colons = 0;
                }
                TokenTree::Punct(p) if p.as_char() == ':' => colons += 1,
                TokenTree::Group(g) => {
                    self.macro_path(&mut run);
                    colons = 0;
                    self.tokens(g.stream());
                }
                _ => {
                    self.macro_path(&mut run);
                    colons = 0;
                }
            }
        }
        self.macro_path(&mut run);
    }

    fn macro_path(&mut self, run: &mut Vec<String>) {
        if run.len() >= 2 {
            self.judge(run, false, "macro path");
        }
        run.clear();
    }
}

impl<'ast> Visit<'ast> for Checker {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        // syn's `Item` has no `attrs()`: one arm per kind of item whose `#[cfg(test)]` counts.
        macro_rules! attrs_of {
            ($($kind:ident),+) => {
                match item {
                    $(syn::Item::$kind(i) => &i.attrs,)+
                    _ => &[],
                }
            };
        }
        let attrs: &[syn::Attribute] = attrs_of!(
            Const,
            Enum,
            ExternCrate,
            Fn,
            Impl,
            Macro,
            Mod,
            Static,
            Struct,
            Trait,
            Type,
            Use
        );
        if !is_cfg_test(attrs) {
            visit::visit_item(self, item);
        }
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        let dir = self.mod_dirs.last().cloned().unwrap_or_default();
        match &m.content {
            None => {
                let name = m.ident.to_string();
                let file = match path_attr(&m.attrs) {
                    Some(p) => dir.join(p),
                    None if dir.join(format!("{name}.rs")).exists() => {
                        dir.join(format!("{name}.rs"))
                    }
                    None => dir.join(&name).join("mod.rs"),
                };
                self.pending.push(file);
            }
            Some(_) => {
                self.mod_dirs.push(dir.join(m.ident.to_string()));
                visit::visit_item_mod(self, m);
                self.mod_dirs.pop();
            }
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_item_extern_crate(&mut self, c: &'ast syn::ItemExternCrate) {
        self.judge(&[c.ident.to_string()], c.rename.is_some(), "extern crate");
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        self.judge(&segments, false, "path");
        visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        visit::visit_macro(self, m);
    }
}

/// The violations in one file's source; `mod x;` declarations are queued relative to `dir`.
fn check_source(source: &str, dir: &Path, checker: &mut Checker) -> syn::Result<()> {
    let file = syn::parse_file(source)?;
    checker.mod_dirs = vec![dir.to_path_buf()];
    checker.visit_file(&file);
    Ok(())
}

fn violations_in(source: &str) -> Vec<String> {
    let mut checker = Checker::default();
    check_source(source, Path::new("/nonexistent"), &mut checker).expect("test source parses");
    checker.violations
}

#[test]
fn the_core_names_no_io_and_no_clock() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut checker = Checker::default();
    for module in CORE {
        let file = src.join(format!("{module}.rs"));
        checker.pending.push(if file.exists() {
            file
        } else {
            src.join(module).join("mod.rs")
        });
    }
    let mut checked = Vec::new();
    let mut found = Vec::new();
    while let Some(file) = checker.pending.pop() {
        let source = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("reading core module {}: {e}", file.display()));
        // `mod x;` in `a/mod.rs` or `a.rs` is `a/x.rs`.
        let dir = if file.file_name().is_some_and(|n| n == "mod.rs") {
            file.parent().unwrap().to_path_buf()
        } else {
            file.with_extension("")
        };
        check_source(&source, &dir, &mut checker)
            .unwrap_or_else(|e| panic!("parsing {}: {e}", file.display()));
        for v in checker.violations.drain(..) {
            found.push(format!("{}: {v}", file.display()));
        }
        checked.push(file);
    }
    assert!(
        checked.len() > CORE.len(),
        "the walk did not follow `mod x;` into files: {checked:?}"
    );
    assert!(
        found.is_empty(),
        "the core must do no I/O and read no clock (move this into a shell module, or pass \
         the value in):\n{}",
        found.join("\n")
    );
}

#[test]
fn every_form_of_a_forbidden_import_is_caught() {
    let bad = [
        "use std::fs;",
        "use std::{fs, io};",
        "use std::{io::{self, Read}, net::TcpStream};",
        "use std::fs as f;",
        "use ::std::fs::File;",
        "use std as s;",
        "use std::*;",
        "use std::time::*;",
        "use std::time::Instant;",
        "use std::time::{Duration, SystemTime};",
        "use tokio::sync::mpsc;",
        "extern crate tokio;",
        "use crate::spool::StateDir;",
        "fn f() { let _ = std::fs::read(\"x\"); }",
        "fn f() { let _ = ::std::net::TcpStream::connect(\"x\"); }",
        "fn f() -> std::time::SystemTime { todo!() }",
        "fn f() { let _t = Clock::now(); }",
        "fn f() { tokio::spawn(async {}); }",
        "fn f() { println!(\"{:?}\", std::fs::metadata(\"x\")); }",
        "fn f() { assert!(vec![std::time::Instant::now()].is_empty()); }",
        "mod inner { use std::fs; }",
        "impl X { fn f(&self) { let _ = crate::ingest::run; } }",
    ];
    for source in bad {
        assert!(!violations_in(source).is_empty(), "not caught: {source}");
    }
    let fine = [
        "use std::io::{self, Read, Write};",
        "use std::time::Duration;",
        "use std::collections::BTreeMap;",
        "use crate::flv::TagHeader; use crate::amf0::Value;",
        "use super::tag::Tag;",
        "fn f() { let _ = format!(\"{}\", std::mem::size_of::<u8>()); }",
        "#[cfg(test)] mod tests { use std::fs; fn t() { std::fs::read(\"x\").unwrap(); } }",
        "#[cfg(test)] fn fixture() -> Vec<u8> { std::fs::read(\"x\").unwrap() }",
        "fn now() -> u64 { 0 } fn f() -> u64 { now() }",
    ];
    for source in fine {
        let v = violations_in(source);
        assert!(v.is_empty(), "wrongly flagged {source}: {v:?}");
    }
}
