use super::*;
use std::collections::HashMap;

const SESSION: i32 = 10_000;
const REBALANCE: i32 = 30_000;
const DELAY: u64 = 1000;
/// When a group whose members all join at 0 gets its first generation:
/// they joined during the first window of the initial delay, so there
/// is a second.
const FORMED: u64 = 2 * DELAY;

fn config(initial_rebalance_delay_ms: u64) -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms,
        ..GroupConfig::default()
    }
}

fn group(initial_rebalance_delay_ms: u64) -> GroupState {
    GroupState::new("g".to_string(), config(initial_rebalance_delay_ms))
}

fn protocol(name: &str) -> (String, Bytes) {
    (name.to_string(), Bytes::from(format!("{name}-metadata")))
}

fn request(member_id: &str) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_string(),
        group_instance_id: None,
        client_id: "client".to_string(),
        client_host: "/127.0.0.1".to_string(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocol_type: "consumer".to_string(),
        protocols: vec![protocol("range")],
        require_known_member_id: false,
        reason: None,
    }
}

fn static_request(member_id: &str, instance: &str) -> JoinRequest {
    JoinRequest {
        group_instance_id: Some(instance.to_string()),
        ..request(member_id)
    }
}

fn sync_request(member_id: &str, generation_id: i32) -> SyncRequest {
    SyncRequest {
        member_id: member_id.to_string(),
        group_instance_id: None,
        generation_id,
        protocol_type: Some("consumer".to_string()),
        protocol_name: Some("range".to_string()),
        assignments: Vec::new(),
    }
}

fn leave_request(member_id: &str) -> LeaveMember {
    LeaveMember {
        member_id: member_id.to_string(),
        group_instance_id: None,
    }
}

fn join_reply(replies: &[Reply], token: Token) -> Option<&JoinResponse> {
    replies.iter().find_map(|r| match r {
        Reply::Join(t, response) if *t == token => Some(response),
        _ => None,
    })
}

fn sync_reply(replies: &[Reply], token: Token) -> Option<&SyncResponse> {
    replies.iter().find_map(|r| match r {
        Reply::Sync(t, response) if *t == token => Some(response),
        _ => None,
    })
}

fn assignment(member_id: &str) -> Bytes {
    Bytes::from(format!("assigned to {member_id}"))
}

/// Joins `requests` (one token each, from 1) during an initial delay and
/// ends it: every member has generation 1. Returns the member ids.
fn joined(g: &mut GroupState, requests: Vec<JoinRequest>) -> Vec<String> {
    let count = requests.len();
    for (token, req) in (1..).zip(requests) {
        assert!(g.join(token, req, 0).is_empty());
    }
    let mut replies = g.tick(DELAY);
    replies.extend(g.tick(FORMED));
    assert_eq!(replies.len(), count);
    (1..=count as Token)
        .map(|t| join_reply(&replies, t).unwrap().member_id.clone())
        .collect()
}

/// A Stable group of `requests` at generation 1, the first member
/// leading, each member assigned [`assignment`]; all of it at [`FORMED`].
fn stable(requests: Vec<JoinRequest>) -> (GroupState, Vec<String>) {
    let mut g = group(DELAY);
    let ids = joined(&mut g, requests);
    let mut leader_sync = sync_request(&ids[0], 1);
    leader_sync.assignments = ids.iter().map(|id| (id.clone(), assignment(id))).collect();
    let replies = g.sync(100, leader_sync, FORMED);
    assert_eq!(
        sync_reply(&replies, 100).unwrap().assignment,
        assignment(&ids[0])
    );
    for (token, id) in (101..).zip(&ids[1..]) {
        let replies = g.sync(token, sync_request(id, 1), FORMED);
        assert_eq!(
            sync_reply(&replies, token).unwrap().assignment,
            assignment(id)
        );
    }
    assert_eq!(g.state(), StateKind::Stable);
    (g, ids)
}

fn dynamic(count: usize) -> Vec<JoinRequest> {
    (0..count).map(|_| request("")).collect()
}

#[test]
fn new_member_gets_an_id_then_joins_with_it() {
    let mut g = group(0);
    let req = JoinRequest {
        require_known_member_id: true,
        ..request("")
    };
    let replies = g.join(1, req.clone(), 0);
    let first = join_reply(&replies, 1).unwrap();
    assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
    assert_eq!(first.generation_id, -1);
    assert!(first.member_id.starts_with("client-"));
    assert_eq!(g.state(), StateKind::Empty);
    assert_eq!(g.next_deadline(), Some(SESSION as u64));

    let id = first.member_id.clone();
    let replies = g.join(
        2,
        JoinRequest {
            member_id: id.clone(),
            ..req.clone()
        },
        10,
    );
    let second = join_reply(&replies, 2).unwrap();
    assert_eq!(second.error, None);
    assert_eq!(second.member_id, id);
    assert_eq!(second.leader, id);
    assert_eq!(second.generation_id, 1);
    assert_eq!(second.members.len(), 1);

    // An id that is not used within the session timeout is forgotten.
    let replies = g.join(3, req.clone(), 100);
    let unused = join_reply(&replies, 3).unwrap().member_id.clone();
    assert!(g
        .tick(100 + SESSION as u64)
        .iter()
        .all(|r| !matches!(r, Reply::Join(3, _))));
    let replies = g.join(
        4,
        JoinRequest {
            member_id: unused,
            ..req
        },
        200 + SESSION as u64,
    );
    assert_eq!(
        join_reply(&replies, 4).unwrap().error,
        Some(ResponseError::UnknownMemberId)
    );
}

#[test]
fn unknown_member_id_is_refused() {
    let mut g = group(0);
    let replies = g.join(1, request("nobody"), 0);
    assert_eq!(
        join_reply(&replies, 1).unwrap().error,
        Some(ResponseError::UnknownMemberId)
    );
}

#[test]
fn members_joining_one_at_a_time_share_a_generation() {
    let mut g = group(3000);
    assert!(g.join(1, request(""), 0).is_empty());
    assert!(g.join(2, request(""), 100).is_empty());
    assert!(g.join(3, request(""), 200).is_empty());
    assert_eq!(g.state(), StateKind::PreparingRebalance);
    // Members joined during the first window: the delay is extended.
    assert!(g.tick(3000).is_empty());
    assert_eq!(g.next_deadline(), Some(6000));

    let replies = g.tick(6000);
    assert_eq!(g.state(), StateKind::CompletingRebalance);
    let responses: Vec<_> = (1..=3).map(|t| join_reply(&replies, t).unwrap()).collect();
    let leader = &responses[0].member_id;
    for response in &responses {
        assert_eq!(response.error, None);
        assert_eq!(response.generation_id, 1);
        assert_eq!(&response.leader, leader);
        assert_eq!(response.protocol_type.as_deref(), Some("consumer"));
        assert_eq!(response.protocol_name.as_deref(), Some("range"));
    }
    let members: Vec<_> = responses[0].members.iter().map(|m| &m.member_id).collect();
    let ids: Vec<_> = responses.iter().map(|r| &r.member_id).collect();
    assert_eq!(members, ids);
    assert_eq!(responses[0].members[1].metadata, protocol("range").1);
    assert!(responses[1].members.is_empty() && responses[2].members.is_empty());
}

#[test]
fn initial_delay_is_extended_while_members_come_up_to_the_rebalance_timeout() {
    let mut g = group(3000);
    let req = JoinRequest {
        rebalance_timeout_ms: 10_000,
        ..request("")
    };
    assert!(g.join(1, req.clone(), 0).is_empty());
    assert_eq!(g.next_deadline(), Some(3000));
    assert!(g.tick(2999).is_empty());
    for (token, (joined_at, window_end)) in (2..).zip([(2000, 3000), (5000, 6000), (8000, 9000)]) {
        assert!(g.join(token, req.clone(), joined_at).is_empty());
        assert!(g.tick(window_end).is_empty());
    }
    // The next window would end at 12000, past the rebalance timeout.
    assert_eq!(g.next_deadline(), Some(10_000));
    assert!(g.join(5, req, 9500).is_empty());
    let replies = g.tick(10_000);
    assert_eq!(replies.len(), 5);
    assert_eq!(g.generation(), 1);
}

#[test]
fn lone_member_waits_out_the_initial_delay() {
    let mut g = group(3000);
    assert!(g.join(1, request(""), 0).is_empty());
    assert!(g.tick(2999).is_empty());
    let replies = g.tick(3000);
    assert_eq!(join_reply(&replies, 1).unwrap().generation_id, 1);
}

#[test]
fn follower_rejoining_a_stable_group_keeps_the_generation() {
    let (mut g, ids) = stable(dynamic(2));
    let replies = g.join(10, request(&ids[1]), 2000);
    let response = join_reply(&replies, 10).unwrap();
    assert_eq!((response.error, response.generation_id), (None, 1));
    assert_eq!(response.leader, ids[0]);
    assert!(response.members.is_empty());
    assert_eq!(g.state(), StateKind::Stable);

    // A changed subscription is a reason to rebalance.
    let changed = JoinRequest {
        protocols: vec![protocol("range"), protocol("roundrobin")],
        ..request(&ids[1])
    };
    assert!(g.join(11, changed, 2000).is_empty());
    assert_eq!(g.state(), StateKind::PreparingRebalance);
}

#[test]
fn leader_rejoining_a_stable_group_rebalances() {
    let (mut g, ids) = stable(dynamic(2));
    assert!(g.join(10, request(&ids[0]), 2000).is_empty());
    assert_eq!(g.state(), StateKind::PreparingRebalance);
    assert_eq!(
        g.heartbeat(&ids[1], None, 1, 2000),
        Err(ResponseError::RebalanceInProgress)
    );
    let replies = g.join(11, request(&ids[1]), 2100);
    assert_eq!(join_reply(&replies, 10).unwrap().generation_id, 2);
    assert_eq!(join_reply(&replies, 11).unwrap().generation_id, 2);
}

#[test]
fn leader_sync_delivers_every_assignment() {
    let mut g = group(DELAY);
    let ids = joined(&mut g, dynamic(3));
    // Followers that sync before the leader wait for it.
    assert!(g.sync(20, sync_request(&ids[1], 1), FORMED).is_empty());
    assert!(g.sync(21, sync_request(&ids[2], 1), FORMED).is_empty());
    assert_eq!(g.state(), StateKind::CompletingRebalance);

    let mut leader_sync = sync_request(&ids[0], 1);
    leader_sync.assignments = ids[..2]
        .iter()
        .map(|id| (id.clone(), assignment(id)))
        .collect();
    let replies = g.sync(22, leader_sync, FORMED);
    assert_eq!(replies.len(), 3);
    assert_eq!(
        sync_reply(&replies, 22).unwrap().assignment,
        assignment(&ids[0])
    );
    assert_eq!(
        sync_reply(&replies, 20).unwrap().assignment,
        assignment(&ids[1])
    );
    // The leader gave the third member nothing.
    let third = sync_reply(&replies, 21).unwrap();
    assert_eq!((third.error, third.assignment.len()), (None, 0));
    assert_eq!(third.protocol_name.as_deref(), Some("range"));
    assert_eq!(g.state(), StateKind::Stable);

    // Once Stable, a sync is answered at once with the stored assignment.
    let replies = g.sync(23, sync_request(&ids[1], 1), FORMED + 10);
    assert_eq!(
        sync_reply(&replies, 23).unwrap().assignment,
        assignment(&ids[1])
    );
}

#[test]
fn sync_errors() {
    let mut g = group(DELAY);
    let ids = joined(&mut g, dynamic(2));
    let error = |g: &mut GroupState, req: SyncRequest| {
        let replies = g.sync(30, req, FORMED);
        sync_reply(&replies, 30).unwrap().error
    };
    assert_eq!(
        error(&mut g, sync_request("nobody", 1)),
        Some(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        error(&mut g, sync_request(&ids[1], 2)),
        Some(ResponseError::IllegalGeneration)
    );
    let mut wrong_protocol = sync_request(&ids[1], 1);
    wrong_protocol.protocol_name = Some("roundrobin".to_string());
    assert_eq!(
        error(&mut g, wrong_protocol),
        Some(ResponseError::InconsistentGroupProtocol)
    );

    // A rebalance starting while a follower waits tells it to rejoin.
    assert!(g.sync(31, sync_request(&ids[1], 1), FORMED).is_empty());
    let replies = g.join(32, request(""), FORMED + 1);
    assert_eq!(
        sync_reply(&replies, 31).unwrap().error,
        Some(ResponseError::RebalanceInProgress)
    );
    assert_eq!(
        error(&mut g, sync_request(&ids[1], 1)),
        Some(ResponseError::RebalanceInProgress)
    );
}

#[test]
fn heartbeat_errors() {
    let (mut g, ids) = stable(dynamic(2));
    assert_eq!(
        g.heartbeat("nobody", None, 1, 2000),
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        g.heartbeat(&ids[1], None, 0, 2000),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(g.heartbeat(&ids[1], None, 1, 2000), Ok(()));
    assert!(g.join(10, request(""), 2000).is_empty());
    assert_eq!(
        g.heartbeat(&ids[1], None, 1, 2000),
        Err(ResponseError::RebalanceInProgress)
    );
    g.remove_all();
    assert_eq!(
        g.heartbeat(&ids[1], None, 1, 2000),
        Err(ResponseError::CoordinatorNotAvailable)
    );
}

#[test]
fn silent_member_expires_and_the_group_rebalances() {
    let (mut g, ids) = stable(dynamic(2));
    let expires = FORMED + SESSION as u64;
    assert_eq!(g.next_deadline(), Some(expires));
    assert_eq!(g.heartbeat(&ids[0], None, 1, 5000), Ok(()));
    assert!(g.tick(expires - 1).is_empty());
    assert!(g.tick(expires).is_empty());
    assert_eq!(g.state(), StateKind::PreparingRebalance);
    assert_eq!(
        g.heartbeat(&ids[1], None, 1, expires),
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        g.heartbeat(&ids[0], None, 1, expires),
        Err(ResponseError::RebalanceInProgress)
    );

    let replies = g.join(10, request(&ids[0]), expires + 1);
    let response = join_reply(&replies, 10).unwrap();
    assert_eq!(response.generation_id, 2);
    assert_eq!(response.members.len(), 1);
}

/// A follower's session waits while its SyncGroup does; when a new
/// rebalance answers that SyncGroup the session starts afresh, so the
/// follower is not expired at the same instant.
#[test]
fn a_follower_answered_by_a_new_rebalance_keeps_its_session() {
    let mut g = group(DELAY);
    let ids = joined(&mut g, dynamic(2));
    assert!(g.sync(100, sync_request(&ids[1], 1), FORMED).is_empty());
    // The leader never syncs and goes silent.
    let expires = FORMED + SESSION as u64;
    let replies = g.tick(expires);
    assert_eq!(
        sync_reply(&replies, 100).map(|r| r.error),
        Some(Some(ResponseError::RebalanceInProgress))
    );
    // The owner ticks again at once: the group's next deadline is now.
    g.tick(expires);
    let replies = g.join(200, request(&ids[1]), expires);
    let response = join_reply(&replies, 200).expect("the follower rejoins at once");
    assert_eq!((response.error, response.generation_id), (None, 2));
    assert_eq!(response.member_id, ids[1]);
}

#[test]
fn last_member_expiring_empties_the_group() {
    let (mut g, _) = stable(dynamic(1));
    g.tick(FORMED + SESSION as u64);
    assert_eq!(g.state(), StateKind::Empty);
    assert_eq!(g.generation(), 2);
    assert_eq!(g.next_deadline(), None);
}

#[test]
fn rebalance_timeout_drops_members_that_did_not_rejoin() {
    let (mut g, ids) = stable(dynamic(2));
    assert!(g.join(10, request(""), 2000).is_empty());
    assert!(g.join(11, request(&ids[0]), 2000).is_empty());
    let deadline = 2000 + REBALANCE as u64;
    // The second member heartbeats but never rejoins.
    for now in (5000..deadline).step_by(5000) {
        assert_eq!(
            g.heartbeat(&ids[1], None, 1, now),
            Err(ResponseError::RebalanceInProgress)
        );
        assert!(g.tick(now).is_empty());
    }
    assert_eq!(g.next_deadline(), Some(deadline));
    let replies = g.tick(deadline);
    assert_eq!(replies.len(), 2);
    let leader = join_reply(&replies, 11).unwrap();
    assert_eq!(leader.generation_id, 2);
    assert_eq!(leader.leader, ids[0]);
    let members: Vec<_> = leader.members.iter().map(|m| m.member_id.clone()).collect();
    let newcomer = join_reply(&replies, 10).unwrap().member_id.clone();
    assert_eq!(members, vec![ids[0].clone(), newcomer]);
    assert_eq!(
        g.heartbeat(&ids[1], None, 1, deadline),
        Err(ResponseError::UnknownMemberId)
    );
}

#[test]
fn member_that_never_syncs_is_dropped() {
    let mut g = group(DELAY);
    let ids = joined(&mut g, dynamic(2));
    g.sync(20, sync_request(&ids[0], 1), FORMED);
    let deadline = FORMED + REBALANCE as u64;
    // The follower stays alive by heartbeats alone.
    for now in (FORMED + 5000..deadline).step_by(5000) {
        assert_eq!(g.heartbeat(&ids[1], None, 1, now), Ok(()));
        assert_eq!(g.heartbeat(&ids[0], None, 1, now), Ok(()));
    }
    assert_eq!(g.next_deadline(), Some(deadline));
    g.tick(deadline);
    assert_eq!(g.state(), StateKind::PreparingRebalance);
    assert_eq!(
        g.heartbeat(&ids[1], None, 1, deadline),
        Err(ResponseError::UnknownMemberId)
    );
}

#[test]
fn leaving_members_rebalance_and_the_last_empties_the_group() {
    let (mut g, ids) = stable(dynamic(3));
    assert!(g.join(10, request(&ids[0]), 2000).is_empty());
    let (results, replies) = g.leave(vec![leave_request(&ids[1]), leave_request("nobody")], 2000);
    assert!(replies.is_empty());
    assert_eq!(results[0], (leave_request(&ids[1]), Ok(())));
    assert_eq!(
        results[1],
        (leave_request("nobody"), Err(ResponseError::UnknownMemberId))
    );
    assert_eq!(g.state(), StateKind::PreparingRebalance);

    // The waiting JoinGroup of a member that leaves is answered.
    let (results, replies) = g.leave(vec![leave_request(&ids[0]), leave_request(&ids[2])], 2100);
    assert!(results.iter().all(|(_, error)| error.is_ok()));
    assert_eq!(
        join_reply(&replies, 10).unwrap().error,
        Some(ResponseError::UnknownMemberId)
    );
    assert_eq!(g.state(), StateKind::Empty);
    assert_eq!(g.generation(), 2);
    assert!(g.is_empty());
    assert_eq!(g.next_deadline(), None);
}

#[test]
fn leave_of_the_one_member_not_rejoined_ends_the_join_phase() {
    let (mut g, ids) = stable(dynamic(2));
    assert!(g.join(10, request(&ids[0]), 2000).is_empty());
    let (_, replies) = g.leave(vec![leave_request(&ids[1])], 2100);
    assert_eq!(join_reply(&replies, 10).unwrap().generation_id, 2);
    assert_eq!(g.state(), StateKind::CompletingRebalance);
}

#[test]
fn restarted_static_member_takes_over_without_rebalance() {
    let requests = vec![static_request("", "a"), static_request("", "b")];
    let (mut g, ids) = stable(requests);
    // "b" restarts without its member id, well within its session.
    let replies = g.join(10, static_request("", "b"), 5000);
    let response = join_reply(&replies, 10).unwrap();
    let new_id = response.member_id.clone();
    assert!(new_id.starts_with("b-"));
    assert_ne!(new_id, ids[1]);
    assert_eq!((response.error, response.generation_id), (None, 1));
    assert!(!response.skip_assignment && response.members.is_empty());
    assert_eq!(g.state(), StateKind::Stable);

    let replies = g.sync(
        11,
        SyncRequest {
            group_instance_id: Some("b".to_string()),
            ..sync_request(&new_id, 1)
        },
        5000,
    );
    assert_eq!(
        sync_reply(&replies, 11).unwrap().assignment,
        assignment(&ids[1])
    );

    // The old incarnation is fenced everywhere.
    assert_eq!(
        g.heartbeat(&ids[1], Some("b"), 1, 5000),
        Err(ResponseError::FencedInstanceId)
    );
    assert_eq!(
        g.validate_commit(&ids[1], Some("b"), 1),
        Err(ResponseError::FencedInstanceId)
    );
    let old_sync = SyncRequest {
        group_instance_id: Some("b".to_string()),
        ..sync_request(&ids[1], 1)
    };
    assert_eq!(
        sync_reply(&g.sync(12, old_sync, 5000), 12).unwrap().error,
        Some(ResponseError::FencedInstanceId)
    );
    let replies = g.join(13, static_request(&ids[1], "b"), 5000);
    assert_eq!(
        join_reply(&replies, 13).unwrap().error,
        Some(ResponseError::FencedInstanceId)
    );
    assert_eq!(g.heartbeat(&new_id, Some("b"), 1, 5000), Ok(()));
}

#[test]
fn restarted_static_leader_keeps_leading_and_skips_assignment() {
    let requests = vec![static_request("", "a"), static_request("", "b")];
    let (mut g, ids) = stable(requests);
    let replies = g.join(10, static_request("", "a"), 5000);
    let response = join_reply(&replies, 10).unwrap();
    assert_eq!(response.leader, response.member_id);
    assert!(response.skip_assignment);
    assert_eq!(response.members.len(), 2);
    assert_eq!(response.members[1].member_id, ids[1]);
    assert_eq!(g.generation(), 1);
}

#[test]
fn silent_static_member_keeps_its_place_until_its_session_ends() {
    let requests = vec![static_request("", "a"), static_request("", "b")];
    let (mut g, ids) = stable(requests);
    let expires = FORMED + SESSION as u64;
    for now in (3000..expires).step_by(3000) {
        assert_eq!(g.heartbeat(&ids[0], Some("a"), 1, now), Ok(()));
        assert!(g.tick(now).is_empty());
    }
    assert_eq!(g.state(), StateKind::Stable);
    g.tick(expires);
    assert_eq!(g.state(), StateKind::PreparingRebalance);
    assert_eq!(g.describe().members.len(), 1);
}

#[test]
fn static_member_removed_by_instance_id() {
    let (mut g, _) = stable(vec![static_request("", "a"), static_request("", "b")]);
    let by_instance = LeaveMember {
        member_id: String::new(),
        group_instance_id: Some("b".to_string()),
    };
    let (results, _) = g.leave(vec![by_instance.clone()], 2000);
    assert_eq!(results, vec![(by_instance.clone(), Ok(()))]);
    assert_eq!(g.state(), StateKind::PreparingRebalance);
    let (results, _) = g.leave(vec![by_instance.clone()], 2000);
    assert_eq!(
        results,
        vec![(by_instance, Err(ResponseError::UnknownMemberId))]
    );
}

#[test]
fn commit_checks() {
    let mut g = group(DELAY);
    assert_eq!(g.validate_commit("", None, -1), Ok(()));
    assert_eq!(g.validate_commit("self-managed", None, -1), Ok(()));
    let ids = joined(&mut g, dynamic(2));
    assert_eq!(
        g.validate_commit("", None, -1),
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        g.validate_commit(&ids[0], None, 1),
        Err(ResponseError::RebalanceInProgress)
    );
    let mut leader_sync = sync_request(&ids[0], 1);
    leader_sync.assignments = vec![(ids[0].clone(), assignment(&ids[0]))];
    g.sync(20, leader_sync, FORMED);
    assert_eq!(g.validate_commit(&ids[0], None, 1), Ok(()));
    assert_eq!(
        g.validate_commit(&ids[0], None, 0),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        g.validate_commit("nobody", None, 1),
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        g.validate_commit(&ids[0], Some("unknown"), 1),
        Err(ResponseError::UnknownMemberId)
    );
    // Commits go on while the group prepares to rebalance.
    g.join(21, request(""), FORMED);
    assert_eq!(g.validate_commit(&ids[1], None, 1), Ok(()));

    let (mut g, _) = stable(dynamic(1));
    g.tick(FORMED + SESSION as u64);
    assert_eq!(g.validate_commit("", None, -1), Ok(()));
    g.remove_all();
    assert_eq!(
        g.validate_commit("", None, -1),
        Err(ResponseError::CoordinatorNotAvailable)
    );
}

#[test]
fn protocols_must_agree() {
    let mut g = group(0);
    let untyped = JoinRequest {
        protocol_type: String::new(),
        ..request("")
    };
    assert_eq!(
        join_reply(&g.join(1, untyped, 0), 1).unwrap().error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
    let bare = JoinRequest {
        protocols: Vec::new(),
        ..request("")
    };
    assert_eq!(
        join_reply(&g.join(2, bare, 0), 2).unwrap().error,
        Some(ResponseError::InconsistentGroupProtocol)
    );

    assert_eq!(
        join_reply(&g.join(3, request(""), 0), 3).unwrap().error,
        None
    );
    let connect = JoinRequest {
        protocol_type: "connect".to_string(),
        ..request("")
    };
    assert_eq!(
        join_reply(&g.join(4, connect, 0), 4).unwrap().error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
    let disjoint = JoinRequest {
        protocols: vec![protocol("roundrobin")],
        ..request("")
    };
    assert_eq!(
        join_reply(&g.join(5, disjoint, 0), 5).unwrap().error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
    let overlapping = JoinRequest {
        protocols: vec![protocol("roundrobin"), protocol("range")],
        ..request("")
    };
    assert!(g.join(6, overlapping, 0).is_empty());
}

#[test]
fn protocol_is_chosen_by_votes() {
    let mut g = group(DELAY);
    let prefers = |names: [&str; 2]| JoinRequest {
        protocols: names.iter().map(|n| protocol(n)).collect(),
        ..request("")
    };
    joined(
        &mut g,
        vec![
            prefers(["range", "roundrobin"]),
            prefers(["roundrobin", "range"]),
            prefers(["roundrobin", "range"]),
        ],
    );
    assert_eq!(g.protocol.as_deref(), Some("roundrobin"));
}

#[test]
fn session_timeout_must_be_within_bounds() {
    let mut g = group(0);
    for timeout in [5999, 1_800_001, -1] {
        let req = JoinRequest {
            session_timeout_ms: timeout,
            ..request("")
        };
        assert_eq!(
            join_reply(&g.join(1, req, 0), 1).unwrap().error,
            Some(ResponseError::InvalidSessionTimeout)
        );
    }
    assert_eq!(g.state(), StateKind::Empty);
}

#[test]
fn group_size_is_limited() {
    let mut g = GroupState::new(
        "g".to_string(),
        GroupConfig {
            max_size: 1,
            ..config(0)
        },
    );
    let first = join_reply(&g.join(1, request(""), 0), 1).unwrap().clone();
    assert_eq!(
        join_reply(&g.join(2, request(""), 0), 2).unwrap().error,
        Some(ResponseError::GroupMaxSizeReached)
    );
    // A known member still gets in.
    assert_eq!(
        join_reply(&g.join(3, request(&first.member_id), 0), 3)
            .unwrap()
            .error,
        None
    );
}

#[test]
fn describe_shows_members_and_assignments_when_stable() {
    let (mut g, ids) = stable(vec![static_request("", "a"), request("")]);
    let description = g.describe();
    assert_eq!(description.state.to_string(), "Stable");
    assert_eq!(description.protocol_type, "consumer");
    assert_eq!(description.protocol, "range");
    let expected: Vec<_> = ids
        .iter()
        .zip([Some("a".to_string()), None])
        .map(|(id, instance)| MemberDescription {
            member_id: id.clone(),
            group_instance_id: instance,
            client_id: "client".to_string(),
            client_host: "/127.0.0.1".to_string(),
            metadata: protocol("range").1,
            assignment: assignment(id),
        })
        .collect();
    assert_eq!(description.members, expected);

    g.join(10, request(""), 2000);
    let rebalancing = g.describe();
    assert_eq!(rebalancing.state.to_string(), "PreparingRebalance");
    assert_eq!(rebalancing.protocol, "");
    assert_eq!(rebalancing.members.len(), 3);
    assert!(rebalancing
        .members
        .iter()
        .all(|m| m.metadata.is_empty() && m.assignment.is_empty()));

    let (results, _) = g.leave(ids.iter().map(|id| leave_request(id)).collect(), 2000);
    assert!(results.iter().all(|(_, error)| error.is_ok()));
    // The newcomer is still waiting in the join phase.
    assert_eq!(g.describe().members.len(), 1);
    g.remove_all();
    let dead = g.describe();
    assert_eq!(
        (dead.state.to_string(), dead.members.len()),
        ("Dead".to_string(), 0)
    );
}

#[test]
fn next_deadline_is_the_earliest() {
    let (mut g, ids) = stable(dynamic(2));
    let session_end = FORMED + SESSION as u64;
    assert_eq!(g.next_deadline(), Some(session_end));
    assert_eq!(g.heartbeat(&ids[0], None, 1, 4000), Ok(()));
    assert_eq!(g.next_deadline(), Some(session_end));
    assert_eq!(g.heartbeat(&ids[1], None, 1, 4000), Ok(()));
    assert_eq!(g.next_deadline(), Some(4000 + SESSION as u64));

    // A pending member id with a shorter session comes first.
    let pending = JoinRequest {
        session_timeout_ms: 6000,
        require_known_member_id: true,
        ..request("")
    };
    g.join(10, pending, 5000);
    assert_eq!(g.next_deadline(), Some(11_000));
    // A join phase does not end before the members' sessions.
    assert!(g.join(11, request(&ids[0]), 6000).is_empty());
    assert_eq!(g.next_deadline(), Some(11_000));
    g.tick(11_000);
    // Now the follower's session (it has not rejoined) is next, then the
    // end of the join phase.
    assert_eq!(g.next_deadline(), Some(4000 + SESSION as u64));
    g.tick(4000 + SESSION as u64);
    assert_eq!(g.state(), StateKind::CompletingRebalance);
    assert_eq!(g.next_deadline(), Some(14_000 + SESSION as u64));
}

/// A small deterministic generator, so the soak test needs no crate.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn record(answered: &mut HashMap<Token, usize>, replies: Vec<Reply>) {
    for reply in replies {
        let (Reply::Join(token, _) | Reply::Sync(token, _)) = reply;
        *answered.entry(token).or_default() += 1;
    }
}

/// Random requests at random times never leave a token unanswered or
/// answer one twice.
#[test]
fn every_token_is_answered_exactly_once() {
    let mut g = group(500);
    let mut rng = Lcg(7);
    let mut answered: HashMap<Token, usize> = HashMap::new();
    let mut issued = 0;
    let instances = ["s1", "s2"];
    let mut now = 0;
    for _ in 0..3000 {
        now += rng.below(2000);
        record(&mut answered, g.tick(now));
        let known: Vec<String> = g
            .describe()
            .members
            .into_iter()
            .map(|m| m.member_id)
            .collect();
        let token = issued + 1;
        let member = known
            .get(rng.below(known.len() as u64 + 1) as usize)
            .cloned()
            .unwrap_or_default();
        let generation = g.generation() - rng.below(2) as i32;
        let replies = match rng.below(6) {
            0 => g.join(token, request(""), now),
            1 => {
                let instance = instances[rng.below(2) as usize];
                g.join(token, static_request("", instance), now)
            }
            2 => g.join(token, request(&member), now),
            3 => g.sync(token, sync_request(&member, generation), now),
            4 => {
                let _ = g.heartbeat(&member, None, generation, now);
                continue;
            }
            _ => {
                record(&mut answered, g.leave(vec![leave_request(&member)], now).1);
                continue;
            }
        };
        record(&mut answered, replies);
        issued = token;
    }
    // Left alone, every member times out and every request is answered.
    for _ in 0..100 {
        let Some(deadline) = g.next_deadline() else {
            break;
        };
        record(&mut answered, g.tick(deadline));
    }
    assert_eq!(g.next_deadline(), None);
    assert_eq!(g.state(), StateKind::Empty);
    assert_eq!(answered.len() as u64, issued);
    assert!(answered.values().all(|n| *n == 1));
}
