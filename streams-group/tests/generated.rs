//! streams-group/src/messages.rs is what scripts/gen-streams-group-messages.py makes from the
//! schemas in the kafka-clients jar: regenerated here and compared, so a schema change (a new
//! Kafka) or a hand edit shows up as a failure with the command that fixes it.

mod common;

#[test]
fn messages_rs_is_what_the_generator_makes() {
    let jar = common::kafka_clients_jar();
    let out = std::process::Command::new("python3")
        .arg("scripts/gen-streams-group-messages.py")
        .arg("--jar")
        .arg(&jar)
        .arg("--stdout")
        .current_dir(common::root())
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "the generator failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).expect("UTF-8");
    let checked_in =
        std::fs::read_to_string(common::root().join("streams-group/src/messages.rs")).unwrap();
    assert!(
        generated == checked_in,
        "streams-group/src/messages.rs differs from what the generator makes from {}: run `python3 scripts/gen-streams-group-messages.py` and commit the result",
        jar.display()
    );
}
