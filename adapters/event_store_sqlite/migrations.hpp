#pragma once

#include <vector>

namespace oe::sqlite {

struct Migration {
    int version;
    const char* name;
    const char* sql;
};

const std::vector<Migration>& migrations();

}  // namespace oe::sqlite
