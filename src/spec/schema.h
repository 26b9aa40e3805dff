#pragma once
// The runtime_env field table as a JSON Schema (draft 2020-12), for tools that check a spec
// before rtenv sees it (editors, Ray's RAY_RUNTIME_ENV_PLUGIN_SCHEMAS).

#include "spec/runtime_env.h"

namespace rtenv::spec {

/// A JSON Schema of a runtime_env: every built-in field with the shapes validation accepts (an
/// empty value, null, "", [] or {}, is accepted for every field: it means "absent"), and any
/// other top-level field allowed as a plugin field (additionalProperties: its value is the
/// plugin's to validate). The schema checks shapes only: what needs the filesystem (local paths
/// exist, requirements files), field combinations (at most one of pip, uv and conda) and value
/// rules (rtenv:// URIs, variable names) are left to rtenv, so a spec the schema accepts may
/// still be refused, but one it refuses rtenv refuses too (for plugin fields: if no plugin
/// takes the field).
Json runtime_env_schema();

}  // namespace rtenv::spec
