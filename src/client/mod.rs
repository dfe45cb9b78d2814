//! The thin, typed ECS API client (issue 3).
