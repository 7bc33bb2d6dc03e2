#include "check.hpp"

#include <cstring>
#include <exception>

namespace check {
namespace {
int current_failures = 0;
}

std::vector<test_case>& registry() {
  static std::vector<test_case> cases;
  return cases;
}

void fail(const char* file, int line, const std::string& what) {
  ++current_failures;
  std::fprintf(stderr, "  %s:%d: %s\n", file, line, what.c_str());
}

int failures_in_current() { return current_failures; }
}  // namespace check

int main(int argc, char** argv) {
  int passed = 0, failed = 0;
  for (const auto& t : check::registry()) {
    if (argc > 1 && std::strstr(t.name, argv[1]) == nullptr) continue;
    check::current_failures = 0;
    try {
      t.body();
    } catch (const check::stop_case&) {
    } catch (const std::exception& e) {
      check::fail(t.name, 0, std::string("unexpected exception: ") + e.what());
    } catch (...) {
      check::fail(t.name, 0, "unexpected exception");
    }
    if (check::current_failures == 0) {
      ++passed;
      std::printf("ok     %s\n", t.name);
    } else {
      ++failed;
      std::printf("FAILED %s\n", t.name);
    }
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 && passed > 0 ? 0 : 1;
}
