//! The examples in `docs/*.md` are real: every ```yaml block holding a `kind: StreamsApp` passes
//! `freshet-engine validate`, and one followed by a ```jsonl input block and a ```jsonl expected
//! block passes `freshet-engine test` with them, on the test driver, without a broker. Every step
//! kind the compiler accepts is documented in `docs/manifest-reference.md`.
//!
//! A failure names the document and the line of the block.
use std::path::{Path, PathBuf};
use std::process::Command;

use freshet_tests::engine::engine_binary;
use freshet_tests::repo_root;

/// A fenced block of a Markdown document.
#[derive(Debug)]
struct Block {
    /// The info string after the opening fence (`yaml`, `jsonl input`, ...).
    info: String,
    /// 1-based line of the opening fence.
    line: usize,
    text: String,
}

/// The fenced (```) blocks of `markdown`, in order.
fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        match open.take() {
            None => {
                // An opening fence: three backquotes and an info string without any (CommonMark).
                if let Some(info) = trimmed.strip_prefix("```").filter(|i| !i.contains('`')) {
                    open = Some(Block {
                        info: info.trim().to_owned(),
                        line: i + 1,
                        text: String::new(),
                    });
                }
            }
            Some(mut block) => {
                if trimmed.trim_end() == "```" {
                    out.push(block);
                } else {
                    block.text.push_str(line);
                    block.text.push('\n');
                    open = Some(block);
                }
            }
        }
    }
    assert!(open.is_none(), "a fenced block is never closed: {open:?}");
    out
}

/// A manifest found in a document, with the records to test it with.
struct Example {
    place: String,
    manifest: String,
    input: Option<(usize, String)>,
    expected: Option<(usize, String)>,
}

fn is_manifest(block: &Block) -> bool {
    block.info == "yaml"
        && block
            .text
            .lines()
            .any(|l| l.trim_end() == "kind: StreamsApp")
}

/// The StreamsApp manifests of one document; `jsonl input` and `jsonl expected` blocks belong to
/// the manifest before them.
fn examples(path: &Path) -> Vec<Example> {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.strip_prefix(repo_root()).unwrap_or(path).display();
    let mut out: Vec<Example> = Vec::new();
    for block in blocks(&text) {
        let place = format!("{name}:{}", block.line);
        if is_manifest(&block) {
            out.push(Example {
                place,
                manifest: block.text,
                input: None,
                expected: None,
            });
            continue;
        }
        let input = match block.info.as_str() {
            "jsonl input" => true,
            "jsonl expected" => false,
            _ => continue,
        };
        let owner = out
            .last_mut()
            .unwrap_or_else(|| panic!("{place}: a `{}` block before any manifest", block.info));
        let slot = if input {
            &mut owner.input
        } else {
            &mut owner.expected
        };
        assert!(
            slot.is_none(),
            "{place}: a second `{}` block for the manifest at {}",
            block.info,
            owner.place
        );
        *slot = Some((block.line, block.text));
    }
    out
}

fn docs() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo_root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    docs
}

fn engine(args: &[&str]) -> (bool, String) {
    let out = Command::new(engine_binary())
        .args(args)
        .output()
        .expect("run freshet-engine");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Validates and, where it has records, tests one example; the problem, if any.
fn check(example: &Example, dir: &Path) -> Option<String> {
    let manifest = dir.join("app.yaml");
    std::fs::write(&manifest, &example.manifest).unwrap();
    let manifest = manifest.to_string_lossy().into_owned();
    let (ok, out) = engine(&["validate", "-f", &manifest]);
    if !ok {
        return Some(format!(
            "{}: freshet-engine validate refused it:\n{out}",
            example.place
        ));
    }
    match (&example.input, &example.expected) {
        (None, None) => None,
        (Some((_, input)), Some((_, expected))) => {
            let (input_path, expected_path) = (dir.join("in.jsonl"), dir.join("out.jsonl"));
            std::fs::write(&input_path, input).unwrap();
            std::fs::write(&expected_path, expected).unwrap();
            let (ok, out) = engine(&[
                "test",
                "-f",
                &manifest,
                "--input",
                &input_path.to_string_lossy(),
                "--expected",
                &expected_path.to_string_lossy(),
            ]);
            (!ok).then(|| format!("{}: freshet-engine test failed:\n{out}", example.place))
        }
        (Some((line, _)), None) | (None, Some((line, _))) => Some(format!(
            "{}: the manifest has a `jsonl input` or `jsonl expected` block (line {line}) without the other",
            example.place
        )),
    }
}

#[test]
fn every_manifest_in_the_docs_validates_and_passes_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    let mut tested = 0;
    let mut failures = Vec::new();
    for doc in docs() {
        for example in examples(&doc) {
            checked += 1;
            if example.input.is_some() {
                tested += 1;
            }
            failures.extend(check(&example, dir.path()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} documented manifests fail:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    // The reference alone has dozens; a parser that finds none must not pass.
    assert!(
        checked >= 20 && tested >= 15,
        "only {checked} manifests ({tested} with records) found in docs/"
    );
}

/// The step names in a `const <name>: &[&str] = &[ ... ];` list of the compiler's source.
fn step_list(source: &str, name: &str) -> Vec<String> {
    let start = source
        .find(&format!("const {name}: &[&str] = &["))
        .unwrap_or_else(|| panic!("spec/src/compile/mod.rs no longer has `const {name}`"));
    let body = &source[start..];
    let body = &body[body.find("= &[").unwrap() + 4..body.find("];").unwrap()];
    body.split(',')
        .map(|s| s.trim().trim_matches('"').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn every_step_kind_the_compiler_accepts_is_in_the_reference() {
    let source = std::fs::read_to_string(repo_root().join("spec/src/compile/mod.rs")).unwrap();
    let mut steps = step_list(&source, "STATELESS_STEPS");
    steps.extend(step_list(&source, "STATEFUL_STEPS"));
    assert!(steps.len() >= 20, "too few steps found: {steps:?}");
    let reference =
        std::fs::read_to_string(repo_root().join("docs/manifest-reference.md")).unwrap();
    // A step is documented by a heading that names it in backquotes, e.g. "### `filter`, `filterNot`".
    let missing: Vec<&String> = steps
        .iter()
        .filter(|step| {
            !reference
                .lines()
                .any(|l| l.starts_with('#') && l.contains(&format!("`{step}`")))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "docs/manifest-reference.md has no heading naming these steps: {missing:?}"
    );
    // ... and shows it in a tested manifest.
    let examples = examples(&repo_root().join("docs/manifest-reference.md"));
    let unshown: Vec<&String> = steps
        .iter()
        .filter(|step| {
            !examples.iter().any(|e| {
                e.manifest.lines().any(|l| {
                    let l = l.trim_start().trim_start_matches("- ");
                    l.starts_with(&format!("{step}:")) || l.contains(&format!("{{ {step}:"))
                })
            })
        })
        .collect();
    assert!(
        unshown.is_empty(),
        "no manifest in docs/manifest-reference.md uses these steps: {unshown:?}"
    );
}

#[test]
fn blocks_are_found_with_their_lines() {
    let md = "text\n```yaml\nkind: StreamsApp\n```\n\n```jsonl input\n{}\n```\n";
    let b = blocks(md);
    assert_eq!(b.len(), 2);
    assert_eq!((b[0].info.as_str(), b[0].line), ("yaml", 2));
    assert_eq!(
        (b[1].info.as_str(), b[1].line, b[1].text.as_str()),
        ("jsonl input", 6, "{}\n")
    );
}
