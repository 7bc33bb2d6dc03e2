// POOL_TEST(name) { ... } defines a test body templated on `Pool` and runs it
// on memres::unsynchronized_pool_resource ("unsync_pool_<name>") and on
// memres::synchronized_pool_resource ("sync_pool_<name>"): the pools share
// std's interface and semantics, so they share their tests.
#pragma once

#include <memres/memres.hpp>

#include "../support.hpp"

#define POOL_TEST(name)                                                                                  \
  template <class Pool>                                                                                  \
  static void name();                                                                                    \
  static ::check::registrar CHECK_CAT(registrar_unsync_, name)("unsync_pool_" #name,                     \
                                                               &name<memres::unsynchronized_pool_resource>); \
  static ::check::registrar CHECK_CAT(registrar_sync_, name)("sync_pool_" #name,                         \
                                                             &name<memres::synchronized_pool_resource>); \
  template <class Pool>                                                                                  \
  static void name()
