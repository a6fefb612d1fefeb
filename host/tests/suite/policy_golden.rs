//! Policy files against golden outputs in `tests/golden/policy/`: for each
//! `NAME.toml`, `NAME.out` holds either the exact error message or, for a
//! valid file, `policy explain` of each tool it names plus one it does not.
//! Run with `BORAM_BLESS=1` to rewrite the `.out` files after a deliberate
//! change, then review the diff.

use super::workspace_dir;
use boram_host::policy::{Policy, explain};
use std::path::Path;

fn render(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read golden input");
    let name = path.file_name().expect("name").to_string_lossy();
    let dir = path.parent().expect("parent");
    let out = match Policy::parse(&text, &name, dir) {
        Err(e) => format!("{e}\n"),
        Ok(policy) => {
            let mut out = String::new();
            for tool in policy.tools.keys().map(String::as_str).chain(["unlisted_tool"]) {
                out.push_str(&explain(&policy, tool));
                out.push_str("\n\n");
            }
            out
        }
    };
    // Host paths differ between checkouts.
    let root = dir.canonicalize().expect("canonical");
    out.replace(&root.display().to_string(), "$GOLDEN_DIR")
        .replace(&root.parent().expect("parent").display().to_string(), "$GOLDEN_DIR/..")
}

#[test]
fn policy_messages_match_the_golden_files() {
    let dir = workspace_dir().join("tests/golden/policy");
    let bless = std::env::var_os("BORAM_BLESS").is_some();
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .expect("golden dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 20, "the golden set went missing");
    let mut mismatches = Vec::new();
    for input in &inputs {
        let actual = render(input);
        let golden = input.with_extension("out");
        if bless {
            std::fs::write(&golden, &actual).expect("bless");
            continue;
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_default();
        if expected != actual {
            mismatches.push(format!(
                "--- {}\nexpected:\n{expected}\nactual:\n{actual}",
                golden.display()
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} golden mismatches (BORAM_BLESS=1 to update):\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn the_shipped_policies_are_valid() {
    for name in ["default.toml", "dev.toml"] {
        let path = workspace_dir().join("policies").join(name);
        if let Err(e) = Policy::load(&path) {
            panic!("{name} is invalid:\n{e}");
        }
    }
    let dev = Policy::load(&workspace_dir().join("policies/dev.toml")).expect("dev");
    assert_eq!(dev.tool("read_file").fs[0].guest, "/workspace");
    assert!(dev.tool("read_file").fs[0].host.ends_with("workspace"));
    assert!(
        Policy::load(&workspace_dir().join("policies/default.toml"))
            .expect("default")
            .tools
            .is_empty()
    );
}

#[test]
fn the_production_example_is_valid_once_its_directories_exist() {
    let text = std::fs::read_to_string(workspace_dir().join("policies/production.toml")).expect("read");
    let root = tempfile::tempdir().expect("tempdir");
    for sub in ["docs", "out"] {
        std::fs::create_dir_all(root.path().join(sub)).expect("mkdir");
    }
    let text = text.replace("/srv/boram", &root.path().display().to_string());
    let policy = Policy::parse(&text, "production.toml", root.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(policy.tool("unlisted").approval, boram_host::policy::Approval::Deny);
    assert_eq!(policy.tool("write_file").limits.max_output_bytes, 16 << 10);
}
