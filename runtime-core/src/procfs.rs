//! TODO(module skeleton)
