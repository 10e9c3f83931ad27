//! `sfetl demo`, README's first command, on a fresh folder: exact figures at each step.

use crate::common::run_blocking;

#[test]
fn demo_runs_the_whole_pipeline_and_reports_each_step() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_blocking(&["demo", "--dir", dir.path().join("demo").to_str().unwrap()]);
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
    // Scored with SQL, written back through one Bulk ingest job per object, read back by REST.
    assert!(
        text.contains("| Contact       | 3000   | 30.0      | 100.0     |\n   | Lead          | 1384   | 40.0      | 80.0      |"),
        "{text}"
    );
    assert!(
        text.contains("person_scores/routes[0] (update Lead): 1384 applied, 0 rejected\n     person_scores/routes[1] (update Contact): 3000 applied, 0 rejected\n"),
        "{text}"
    );
    assert!(
        text.contains("13 API calls: 10 Bulk API 2.0 ingest calls"),
        "{text}"
    );
    assert!(
        text.contains("   Lead     00Q5g0000000002EAA Zoë Ångström-Müller Pi          796.93       80  has email, known company, open lead\n"),
        "{text}"
    );
    assert!(
        text.contains("   Contact  0035g0000000000AAA Olu Adeyemi                     548.66       60  known company, contact\n"),
        "{text}"
    );
    assert!(text.contains("5 records read back"), "{text}");
    assert!(!dir.path().join("demo/rejects").exists(), "no row rejected");
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
