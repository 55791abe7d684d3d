//! From an employee record to a joiner, mover or leaver, and the birthright
//! rules (`[hris] everyone`, `[[hris.rules]]`). Built by the infrastructure helper.
