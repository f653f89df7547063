//! The requests the classic group state machine ([`super::GroupState`])
//! takes and the answers it gives: JoinGroup, SyncGroup and LeaveGroup as
//! the coordinator hands them over, the replies to requests that waited,
//! and the group as DescribeGroups shows it.

use super::StateKind;
use bytes::Bytes;
use kafka_protocol::ResponseError;

/// Names a request that waits for its answer.
pub type Token = u64;

/// The generation Kafka sends with a JoinGroup error.
const NO_GENERATION: i32 = -1;

/// A JoinGroup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// Empty for a member that has no id yet.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// Protocol names with their metadata, in the member's preference order.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new member must come back with the id it is given
    /// (KIP-394).
    pub require_known_member_id: bool,
    pub reason: Option<String>,
}

/// A JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    /// Why the join failed; `None` when it succeeded.
    pub error: Option<ResponseError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    /// KIP-814: the leader must not compute a new assignment.
    pub skip_assignment: bool,
    pub member_id: String,
    /// Every member, for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinResponse {
    /// A failed JoinGroup, as Kafka answers it.
    pub fn error(error: ResponseError) -> Self {
        JoinResponse {
            error: Some(error),
            generation_id: NO_GENERATION,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: String::new(),
            members: Vec::new(),
        }
    }

    pub(super) fn error_for(member_id: &str, error: ResponseError) -> Self {
        JoinResponse {
            member_id: member_id.to_string(),
            ..JoinResponse::error(error)
        }
    }
}

/// A member as the leader sees it in its JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// The member's metadata for the selected protocol.
    pub metadata: Bytes,
}

/// A SyncGroup request; only the leader's carries assignments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

/// A SyncGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    /// Why the sync failed; `None` when it succeeded.
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    /// A failed SyncGroup.
    pub fn error(error: ResponseError) -> Self {
        SyncResponse {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// The answer to a request that waited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Join(Token, JoinResponse),
    Sync(Token, SyncResponse),
}

/// One member of a LeaveGroup request: by member id, or by instance id alone
/// (an administrative removal of a static member).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// What LeaveGroup did for one member: `Ok` when it left.
pub type LeaveResult = (LeaveMember, Result<(), ResponseError>);

/// The group as DescribeGroups and ListGroups show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub state: StateKind,
    pub protocol_type: String,
    /// The selected protocol; empty unless Stable, as Kafka shows it.
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

/// A member as DescribeGroups shows it; metadata and assignment are empty
/// unless the group is Stable, as Kafka shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}
