// A minimal test harness: TEST(name) registers a case, CHECK records a
// failure and goes on, REQUIRE stops the case. main() (check.cpp) runs every
// case, or those whose name contains argv[1], and ends with the plain line
// "N passed, N failed".
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace check {

struct test_case {
  const char* name;
  std::function<void()> body;
};

std::vector<test_case>& registry();
void fail(const char* file, int line, const std::string& what);
int failures_in_current();

struct registrar {
  registrar(const char* name, std::function<void()> body) { registry().push_back({name, std::move(body)}); }
};

struct stop_case {};

}  // namespace check

#define CHECK_CAT2(a, b) a##b
#define CHECK_CAT(a, b) CHECK_CAT2(a, b)
#define TEST(name)                                                       \
  static void name();                                                    \
  static ::check::registrar CHECK_CAT(registrar_, name)(#name, &name); \
  static void name()

#define CHECK(cond)                                              \
  do {                                                           \
    if (!(cond)) ::check::fail(__FILE__, __LINE__, "CHECK(" #cond ")"); \
  } while (0)

#define REQUIRE(cond)                                                       \
  do {                                                                      \
    if (!(cond)) {                                                          \
      ::check::fail(__FILE__, __LINE__, "REQUIRE(" #cond ")");              \
      throw ::check::stop_case{};                                           \
    }                                                                       \
  } while (0)

#define CHECK_THROWS_AS(expr, type)                                               \
  do {                                                                            \
    bool caught_ = false;                                                         \
    try {                                                                         \
      (void)(expr);                                                               \
    } catch (const type&) {                                                       \
      caught_ = true;                                                             \
    } catch (...) {                                                               \
      ::check::fail(__FILE__, __LINE__, "CHECK_THROWS_AS(" #expr ", " #type "): other exception"); \
      caught_ = true;                                                             \
    }                                                                             \
    if (!caught_) ::check::fail(__FILE__, __LINE__, "CHECK_THROWS_AS(" #expr ", " #type "): no exception"); \
  } while (0)
