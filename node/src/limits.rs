//! Size limits of what the API faces accept and answer, shared by the HTTP and gRPC faces,
//! the service layer and the console forwarding of agents.

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// Largest body of `PUT …/acl`: a policy document of the largest accepted size, JSON-escaped.
pub const MAX_POLICY_BODY: usize = 2 * x0t_policy::MAX_DOCUMENT_BYTES + 4 * 1024;

/// Most nodes one list answer carries.
pub const MAX_LIST_LIMIT: usize = 100_000;
