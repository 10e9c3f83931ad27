//! `sfetl demo`, README's first command, on a fresh folder: exact figures at each step.

use std::process::Command;

#[test]
fn demo_runs_the_whole_pipeline_and_reports_each_step() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sfetl"))
        .args(["demo", "--dir", dir.path().join("demo").to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("8 objects: Account, Attachment, Contact, Lead, Opportunity, Score__c, Task, User; mapped streams: person"),
        "{text}"
    );
    assert!(text.contains("rows: account 1000, person 4387;"), "{text}");
    assert!(text.contains("rows: account 0, person 33 "), "{text}");
    // 4,387 people minus the 3 unconverted Leads deleted: 3,000 Contacts and 1,384 Leads.
    assert!(
        text.contains("| Contact       | 3000   |\n   | Lead          | 1384   |"),
        "{text}"
    );
    assert!(text.contains("| 4420 | 4389   |"), "{text}");
    let syncs = std::fs::read_dir(dir.path().join("demo/export/person"))
        .unwrap()
        .count();
    assert_eq!(syncs, 2, "one sync folder per read");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("demo/config.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
