//! Projects: tenancy, keyset pagination, the delete cascade.

use roughy_app::ports::{
    AssetFilter, AssetRepo, GoneReason, JobRepo, ProjectRepo, Purge, RepoError, UploadLookup,
    UploadRepo,
};
use roughy_app::PageRequest;
use roughy_domain::{AccountId, Project, ProjectId, Staging};
use time::Duration;

use crate::support::{at, first, World};

#[tokio::test]
async fn a_project_needs_its_account_and_a_fresh_id() {
    let w = World::new().await;
    let project = Project {
        id: ProjectId::generate(),
        account_id: AccountId::generate(),
        name: None,
        created_at: at(0),
    };
    assert!(matches!(
        w.repo.create_project(&project).await,
        Err(RepoError::NotFound)
    ));
    let account = w.account().await;
    let project = Project {
        account_id: account.clone(),
        ..project
    };
    w.repo.create_project(&project).await.unwrap();
    assert!(matches!(
        w.repo.create_project(&project).await,
        Err(RepoError::Conflict(_))
    ));
}

#[tokio::test]
async fn another_accounts_project_answers_as_missing() {
    let w = World::new().await;
    let owner = w.account().await;
    let stranger = w.account().await;
    let project = w.project(&owner, at(0)).await;

    assert!(w
        .repo
        .get_project(&owner, &project)
        .await
        .unwrap()
        .is_some());
    assert_eq!(w.repo.get_project(&stranger, &project).await.unwrap(), None);
    assert_eq!(
        w.repo
            .get_project(&owner, &ProjectId::generate())
            .await
            .unwrap(),
        None
    );
    let listed = w.repo.list_projects(&stranger, &first(10)).await.unwrap();
    assert!(listed.items.is_empty() && listed.next_cursor.is_none());
    assert_eq!(
        w.repo
            .delete_project(&stranger, &project, at(1))
            .await
            .unwrap(),
        None
    );
    assert!(w
        .repo
        .get_project(&owner, &project)
        .await
        .unwrap()
        .is_some());
}

/// Reads every page of the owner's projects.
async fn every_page(w: &World, account: &AccountId, limit: usize) -> Vec<Vec<ProjectId>> {
    let mut pages = Vec::new();
    let mut request = first(limit);
    loop {
        let page = w
            .repo
            .list_projects(account, &request)
            .await
            .expect("the repository answers");
        pages.push(page.items.iter().map(|p| p.id.clone()).collect());
        match page.next_cursor {
            Some(cursor) => request.cursor = Some(cursor),
            None => return pages,
        }
    }
}

#[tokio::test]
async fn projects_list_newest_first_with_id_as_tie_break() {
    let w = World::new().await;
    let account = w.account().await;
    // Five projects, three sharing one timestamp.
    let mut expected = Vec::new();
    for secs in [10, 20, 20, 20, 30] {
        let id = w.project(&account, at(secs)).await;
        expected.push((at(secs), id));
    }
    expected.sort();
    expected.reverse();
    let expected: Vec<_> = expected.into_iter().map(|(_, id)| id).collect();

    let pages = every_page(&w, &account, 2).await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![2, 2, 1]
    );
    assert_eq!(pages.concat(), expected);
    assert_eq!(every_page(&w, &account, 5).await, vec![expected.clone()]);
    assert_eq!(every_page(&w, &account, 100).await, vec![expected]);
}

#[tokio::test]
async fn next_cursor_is_null_exactly_when_nothing_follows() {
    let w = World::new().await;
    let account = w.account().await;
    for secs in 0..4 {
        w.project(&account, at(secs)).await;
    }
    // A last page that is exactly full has no cursor: no empty page follows.
    let pages = every_page(&w, &account, 2).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2]);
    let page = w.repo.list_projects(&account, &first(3)).await.unwrap();
    assert!(page.next_cursor.is_some());
    let empty = World::new().await;
    let nobody = empty.account().await;
    let page = empty.repo.list_projects(&nobody, &first(3)).await.unwrap();
    assert!(page.items.is_empty() && page.next_cursor.is_none());
}

#[tokio::test]
async fn a_cursor_is_stable_while_rows_are_inserted() {
    let w = World::new().await;
    let account = w.account().await;
    for secs in 1..=6 {
        w.project(&account, at(secs * 10)).await;
    }
    let all_before = every_page(&w, &account, 100).await.concat();

    let page = w.repo.list_projects(&account, &first(3)).await.unwrap();
    assert_eq!(
        page.items.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
        all_before[..3]
    );
    // Newer rows, and one with the cursor's own timestamp, arrive between two page reads.
    let cursor = page.next_cursor.clone().unwrap();
    w.project(&account, at(100)).await;
    w.project(&account, at(200)).await;
    let same_instant = w.project(&account, cursor.created_at).await;
    let rest = w
        .repo
        .list_projects(
            &account,
            &PageRequest {
                limit: 100,
                cursor: Some(cursor.clone()),
            },
        )
        .await
        .unwrap();
    let mut rest_ids: Vec<_> = rest.items.iter().map(|p| p.id.clone()).collect();
    // The only newcomer that may show up is the one sorting after the cursor.
    if same_instant.as_str() < cursor.id.as_str() {
        assert_eq!(rest_ids.remove(0), same_instant);
    }
    assert_eq!(rest_ids, all_before[3..]);
    assert!(rest.next_cursor.is_none());
}

#[tokio::test]
async fn deleting_a_project_deletes_its_assets_as_asset_deletion_would() {
    let w = World::new().await;
    let account = w.account().await;
    let project = w.project(&account, at(0)).await;
    let kept_project = w.project(&account, at(0)).await;
    let pending = w.asset(&account, &project, at(1)).await;
    let processing = w.processing(&account, &project, at(2)).await;
    let kept = w.asset(&account, &kept_project, at(3)).await;

    let mut purges = w
        .repo
        .delete_project(&account, &project, at(10))
        .await
        .unwrap()
        .expect("the caller's project");
    purges.sort_by(|a, b| a.asset_id.cmp(&b.asset_id));
    let mut expected = vec![
        Purge {
            asset_id: pending.id.clone(),
            upload_id: pending.upload_id.clone(),
            staging: Staging::default(),
        },
        Purge {
            asset_id: processing.id.clone(),
            upload_id: processing.upload_id.clone(),
            staging: World::final_staging(),
        },
    ];
    expected.sort_by(|a, b| a.asset_id.cmp(&b.asset_id));
    assert_eq!(purges, expected);

    assert_eq!(w.repo.get_project(&account, &project).await.unwrap(), None);
    for gone in [&pending, &processing] {
        assert_eq!(w.repo.get_asset(&account, &gone.id).await.unwrap(), None);
        assert_eq!(
            w.repo.find_upload(&account, &gone.upload_id).await.unwrap(),
            UploadLookup::Gone(GoneReason::AssetDeleted)
        );
    }
    // The processing job went with its asset.
    assert_eq!(
        w.repo
            .claim_job(at(20), Duration::minutes(1))
            .await
            .unwrap(),
        None
    );
    assert_eq!(w.get(&kept).await, kept);
    let listed = w
        .repo
        .list_assets(&account, &AssetFilter::default(), &first(10))
        .await
        .unwrap();
    assert_eq!(listed.items, vec![kept]);
    assert_eq!(
        w.repo
            .delete_project(&account, &project, at(11))
            .await
            .unwrap(),
        None,
        "a second delete finds nothing"
    );
}
