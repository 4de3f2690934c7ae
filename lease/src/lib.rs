//! Leader election on a Lease (work in progress).
