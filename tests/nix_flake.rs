//! The flake, the NixOS module and the package, checked with what CI has: Debian 12's Nix 2.8
//! (`nix-bin`) and no nixpkgs. Every .nix file parses; flake.lock pins nixos-26.05 at a full
//! revision with its hash; the module's options are all documented with an example of the right
//! type (read through the stand-in `lib` in tests/nix_flake/options.nix); the variables the module
//! sets are the binary's; README names only options that exist; and every unit in systemd/ is
//! installed by nix/package.nix and started by the module, so NixOS cannot drift from the .deb and
//! .rpm. Evaluating the outputs against nixpkgs itself needs a nixpkgs tree and Nix >= 2.18: the
//! last test does it when NIXPKGS_PATH names one, and says plainly when it cannot.

use crate::support::{self, Turn};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::{ensure_apt, run_ok};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn nix_instantiate() -> Command {
    ensure_apt("nix-instantiate", "nix-bin");
    let mut cmd = Command::new("nix-instantiate");
    cmd.current_dir(root());
    cmd
}

/// `nix-instantiate --eval --strict --json FILE`, parsed.
fn eval_json(rel: &str) -> Value {
    let out = run_ok(
        nix_instantiate().args(["--eval", "--strict", "--json", rel]),
        &format!("nix-instantiate --eval {rel}"),
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{rel} did not evaluate to JSON: {e}"))
}

fn nix_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if path.is_dir() {
            if !matches!(name.as_ref(), "target" | ".git" | "result") {
                nix_files(&path, found);
            }
        } else if name.ends_with(".nix") {
            found.push(path);
        }
    }
}

#[test]
fn every_nix_file_parses() {
    let _turn = Turn::shared();
    let mut files = Vec::new();
    nix_files(&root(), &mut files);
    for expected in [
        "flake.nix",
        "nix/package.nix",
        "nix/module.nix",
        "nix/units.nix",
        "nix/appliance.nix",
        "nix/vm-test.nix",
    ] {
        assert!(
            files.contains(&root().join(expected)),
            "{expected} is missing"
        );
    }
    for file in &files {
        run_ok(
            nix_instantiate().arg("--parse").arg(file),
            &format!("nix-instantiate --parse {}", file.display()),
        );
    }
}

#[test]
fn flake_lock_pins_nixos_26_05_at_a_full_revision() {
    let _turn = Turn::shared();
    let lock: Value = serde_json::from_str(&read("flake.lock")).expect("flake.lock is JSON");
    assert_eq!(lock["version"], 7, "flake.lock format");
    let root_node = lock["root"].as_str().expect("root node name");
    let input = lock["nodes"][root_node]["inputs"]["nixpkgs"]
        .as_str()
        .expect("the root's nixpkgs input names a node");
    let node = &lock["nodes"][input];
    let locked = &node["locked"];
    assert_eq!(locked["type"], "github");
    assert_eq!(locked["owner"], "NixOS");
    assert_eq!(locked["repo"], "nixpkgs");
    let rev = locked["rev"].as_str().expect("locked rev");
    assert!(
        rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()),
        "rev {rev:?} is not a full commit hash"
    );
    let hash = locked["narHash"].as_str().expect("locked narHash");
    let b64 = hash.strip_prefix("sha256-").expect("narHash is sha256-...");
    assert!(
        b64.len() == 44
            && b64.ends_with('=')
            && b64[..43]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'),
        "narHash {hash:?} is not an SRI SHA-256"
    );
    let modified = locked["lastModified"].as_u64().expect("lastModified");
    // nixos-26.05 branched in May 2026; a revision older than that is not on the branch.
    assert!(
        modified > 1_777_593_600,
        "lastModified {modified} is before May 2026"
    );

    let original = &node["original"];
    assert_eq!(original["ref"], "nixos-26.05");
    let url = format!(
        "github:{}/{}/{}",
        original["owner"].as_str().unwrap(),
        original["repo"].as_str().unwrap(),
        original["ref"].as_str().unwrap()
    );
    assert!(
        read("flake.nix").contains(&format!("inputs.nixpkgs.url = \"{url}\";")),
        "flake.nix's nixpkgs input is not {url}, which flake.lock records"
    );
}

/// Option paths of services.rtmp-recorder, read through the stand-in lib.
fn options() -> Vec<Value> {
    let opts = eval_json("tests/nix_flake/options.nix");
    opts.as_array().expect("a list of options").clone()
}

#[test]
fn every_module_option_is_documented_with_an_example_of_its_type() {
    let _turn = Turn::shared();
    let opts = options();
    let names: BTreeSet<&str> = opts.iter().map(|o| o["path"].as_str().unwrap()).collect();
    // What an operator sets (issue #11); anything else goes through extraEnvironment.
    for wanted in [
        "enable",
        "package",
        "listenAddresses",
        "openFirewall",
        "http.enable",
        "http.listenAddresses",
        "tls.enable",
        "tls.listenAddresses",
        "tls.certFile",
        "tls.keyFile",
        "chunkDuration",
        "maxChunkSize",
        "allowedKeysFile",
        "keepUploadedFor",
        "keepFlvFor",
        "s3.bucket",
        "s3.prefix",
        "s3.region",
        "s3.endpoint",
        "s3.publicAcl",
        "keyTemplate",
        "logLevel",
        "hooks.command",
        "hooks.webhook",
        "hooks.timeout",
        "environmentFile",
        "extraEnvironment",
    ] {
        let path = format!("services.rtmp-recorder.{wanted}");
        assert!(names.contains(path.as_str()), "no option {path}: {names:?}");
    }
    for o in &opts {
        let path = o["path"].as_str().unwrap();
        assert!(
            o["description"].as_str().unwrap().len() >= 20,
            "{path} has no real description"
        );
        assert_eq!(o["hasExample"], true, "{path} has no example");
        assert_eq!(
            o["exampleAccepted"], true,
            "{path}'s example is not a value of its type ({})",
            o["type"]
        );
    }
}

/// Names of environment variables (NAME = ...) the module sets or mentions as attributes.
fn module_variables() -> BTreeSet<String> {
    read("nix/module.nix")
        .lines()
        .filter_map(|l| {
            let name = l.trim().split(" = ").next()?;
            let upper = name.len() > 2
                && name.starts_with(|c: char| c.is_ascii_uppercase())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            upper.then(|| name.to_string())
        })
        .collect()
}

fn source_text(dir: &Path, text: &mut String) {
    for entry in std::fs::read_dir(dir).expect("reading src") {
        let path = entry.expect("src entry").path();
        if path.is_dir() {
            source_text(&path, text);
        } else if path.extension().is_some_and(|e| e == "rs") {
            text.push_str(&std::fs::read_to_string(&path).expect("reading source"));
        }
    }
}

#[test]
fn every_variable_the_module_sets_is_read_by_the_binary() {
    let _turn = Turn::shared();
    let vars = module_variables();
    let expected = [
        "CHUNK_DURATION",
        "S3_BUCKET",
        "AWS_ENDPOINT_URL_S3",
        "PUBLIC_ACL",
    ];
    let missing: Vec<&str> = expected
        .into_iter()
        .filter(|v| !vars.contains(*v))
        .collect();
    assert!(missing.is_empty(), "the module does not set {missing:?}");
    let mut src = String::new();
    source_text(&root().join("src"), &mut src);
    let unknown: Vec<&String> = vars
        .iter()
        .filter(|v| !src.contains(&format!("\"{v}\"")))
        .collect();
    assert!(
        unknown.is_empty(),
        "nix/module.nix names variables the binary never reads: {unknown:?}"
    );
}

/// Backticked names in a table cell or a line.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

#[test]
fn readme_names_only_module_options_that_exist() {
    let _turn = Turn::shared();
    let opts = options();
    let names: BTreeSet<&str> = opts.iter().map(|o| o["path"].as_str().unwrap()).collect();
    let readme = read("README.md");

    // Options named in full anywhere (the NixOS section).
    let mut in_full = 0;
    let prefix = "services.rtmp-recorder.";
    for (i, _) in readme.match_indices(prefix) {
        let rest = &readme[i + prefix.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
            .unwrap_or(rest.len());
        let name = rest[..end].trim_end_matches('.');
        if name.is_empty() {
            continue;
        }
        in_full += 1;
        assert!(
            names.contains(format!("{prefix}{name}").as_str()),
            "README names {prefix}{name}, which the module does not declare"
        );
    }
    assert!(in_full >= 3, "README's NixOS section names no options");

    // The configuration table: every row maps to an option, or an extraEnvironment entry
    // named after one of that row's own variables, or says why it is fixed.
    let mut lines = readme
        .lines()
        .skip_while(|l| !l.contains("| NixOS option |"));
    let header: Vec<&str> = lines
        .next()
        .expect("no NixOS option column")
        .split('|')
        .collect();
    let env_col = header
        .iter()
        .position(|c| c.trim() == "environment")
        .unwrap();
    let nix_col = header
        .iter()
        .position(|c| c.trim() == "NixOS option")
        .unwrap();
    let rows: Vec<&str> = lines.skip(1).take_while(|l| l.starts_with('|')).collect();
    assert!(
        rows.len() >= 20,
        "configuration table has {} rows",
        rows.len()
    );
    for row in rows {
        let cells: Vec<&str> = row.split('|').collect();
        let vars = backticked(cells[env_col]);
        let cell = cells[nix_col];
        if cell.trim().starts_with("fixed:") {
            continue;
        }
        // A parenthesis after the names explains them.
        let named = backticked(cell.split(" (").next().unwrap());
        assert!(!named.is_empty(), "no NixOS option for: {row}");
        for name in named {
            let ok = match name.strip_prefix("extraEnvironment.") {
                Some(var) => vars.contains(&var),
                None => names.contains(format!("services.rtmp-recorder.{name}").as_str()),
            };
            assert!(ok, "README maps {row:?} to {name}, which is not its option");
        }
    }
}

/// The units in systemd/ by kind: (services, sockets, paths), as file stems.
fn unit_files() -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    let dir = root().join("systemd");
    assert!(
        dir.is_dir(),
        "systemd/ is missing: the unit files (issue #11, branch `appliance`) must be merged \
         before the Nix packaging can install them"
    );
    let (mut services, mut sockets, mut paths) = Default::default();
    for entry in std::fs::read_dir(&dir).expect("reading systemd/") {
        let name = entry
            .expect("systemd/ entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        let set: &mut BTreeSet<String> = match name.rsplit_once('.') {
            Some((_, "service")) => &mut services,
            Some((_, "socket")) => &mut sockets,
            Some((_, "path")) => &mut paths,
            Some((_, "sysusers" | "tmpfiles")) => continue,
            _ => panic!(
                "systemd/{name}: nix/package.nix installs only .service, .socket, .path, \
                 rtmp-recorder.sysusers and rtmp-recorder.tmpfiles; teach it this file"
            ),
        };
        set.insert(name.rsplit_once('.').unwrap().0.to_string());
    }
    (services, sockets, paths)
}

fn strings(v: &Value) -> BTreeSet<String> {
    match v {
        Value::String(s) => BTreeSet::from([s.clone()]),
        Value::Array(a) => a.iter().flat_map(strings).collect(),
        other => panic!("expected names, got {other}"),
    }
}

#[test]
fn every_unit_in_systemd_is_installed_by_the_package_and_started_by_the_module() {
    let _turn = Turn::shared();
    let (services, sockets, paths) = unit_files();
    assert!(!services.is_empty(), "systemd/ holds no .service files");

    let needed = [
        "systemd/*.service systemd/*.socket systemd/*.path",
        "--replace-fail /usr/bin/rtmp-recorder",
        "systemd/rtmp-recorder.sysusers $out/lib/sysusers.d/",
        "systemd/rtmp-recorder.tmpfiles $out/lib/tmpfiles.d/",
    ];
    support::assert_contains_all(&read("nix/package.nix"), &needed, "nix/package.nix");
    for file in ["rtmp-recorder.sysusers", "rtmp-recorder.tmpfiles"] {
        assert!(
            root().join("systemd").join(file).is_file(),
            "systemd/{file} is missing; nix/package.nix installs it"
        );
    }
    // package.nix rewrites this path in every service, and fails the build where it is absent.
    for service in &services {
        let text = read(&format!("systemd/{service}.service"));
        assert!(
            text.contains("ExecStart=/usr/bin/rtmp-recorder "),
            "systemd/{service}.service does not start /usr/bin/rtmp-recorder"
        );
        assert!(
            text.contains("User=rtmp-recorder"),
            "systemd/{service}.service does not run as rtmp-recorder, the user the module creates"
        );
    }
    assert!(
        read("systemd/rtmp-recorder.sysusers")
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["u", "rtmp-recorder"])),
        "systemd/rtmp-recorder.sysusers does not declare the user rtmp-recorder"
    );
    assert!(
        read("nix/module.nix").contains("users.users.rtmp-recorder"),
        "the module does not create the user rtmp-recorder"
    );

    let started = eval_json("nix/units.nix");
    let pairs = [
        ("services", &services, strings(&started["services"])),
        (
            "sockets",
            &sockets,
            &(&strings(&started["socket"]) | &strings(&started["httpSocket"]))
                | &strings(&started["tlsSocket"]),
        ),
        ("paths", &paths, strings(&started["paths"])),
    ];
    for (kind, on_disk, in_module) in pairs {
        assert_eq!(
            on_disk, &in_module,
            "{kind}: systemd/ and nix/units.nix (what the module starts) disagree"
        );
    }
}

/// Instantiates every flake output against a nixpkgs tree, when one is here: NIXPKGS_PATH (a
/// tree made by prepare-nixpkgs.sh) and NIX_INSTANTIATE (default
/// /work/shared/nix/instantiate.sh, which runs Nix 2.26 in a chroot). CI has neither.
#[test]
fn flake_outputs_instantiate_against_nixpkgs() {
    let _turn = Turn::shared();
    let attrs = [
        "packages.x86_64-linux.default",
        "packages.aarch64-linux.default",
        "packages.x86_64-linux.ami",
        "packages.aarch64-linux.ami",
        "nixosConfigurations.recorder.config.system.build.toplevel",
        "nixosConfigurations.recorder-aarch64.config.system.build.toplevel",
        "checks.x86_64-linux.vm",
        "devShells.x86_64-linux.default",
    ];
    let script = std::env::var_os("NIX_INSTANTIATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/nix/instantiate.sh"));
    let nixpkgs = std::env::var_os("NIXPKGS_PATH").map(PathBuf::from);
    let Some(nixpkgs) = nixpkgs.filter(|p| p.join("nixos/modules/module-list.nix").is_file())
    else {
        println!(
            "SKIPPED: the flake outputs were not instantiated against nixpkgs (NIXPKGS_PATH \
             does not name a nixpkgs tree); only the Nix 2.8 checks ran"
        );
        return;
    };
    assert!(
        script.is_file(),
        "NIXPKGS_PATH is set but {} is missing (set NIX_INSTANTIATE)",
        script.display()
    );
    let out = Command::new(&script)
        .args(attrs)
        .env("NIXPKGS_PATH", &nixpkgs)
        .current_dir(root())
        .output()
        .expect("running instantiate.sh");
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "instantiation failed:\n{report}");
    for attr in attrs {
        assert!(
            report.contains(&format!("PASS {attr} ")),
            "{attr} did not instantiate:\n{report}"
        );
    }
}
