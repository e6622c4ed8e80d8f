# What `cmake --install` puts under the prefix, and how a consumer finds it:
#
#   LIBDIR/libswiglu.so*               the dispatch core with the CPU backend
#   LIBDIR/libswiglu-{cuda,hip}.so     the GPU modules this build made, beside
#                                      libswiglu: the registry looks in the
#                                      directory libswiglu was loaded from, so
#                                      an installed tree needs no environment
#   include/swiglu/swiglu.h
#   LIBDIR/cmake/swiglu/               find_package(swiglu) -> swiglu::swiglu
#   LIBDIR/pkgconfig/swiglu.pc         pkg-config --cflags --libs swiglu
#
# Both package files find the prefix from their own location, so the tree
# can be installed with `--prefix` anywhere, or moved. tests/install checks
# all of this on the installed tree (CTest: install_cmake, install_pkgconfig).
include(CMakePackageConfigHelpers)

set(SWIGLU_INSTALLED_MODULES)
if(TARGET swiglu-cuda)
  list(APPEND SWIGLU_INSTALLED_MODULES cuda)
endif()
if(SWIGLU_HAVE_HIP_MODULE)
  list(APPEND SWIGLU_INSTALLED_MODULES hip)
endif()
# A static libswiglu carries its private link dependencies to the consumer.
if(SWIGLU_LIBRARY_TYPE STREQUAL "STATIC")
  set(SWIGLU_CONFIG_STATIC 1)
  set(SWIGLU_PC_LIBS_PRIVATE "${OpenMP_C_FLAGS} -lpthread -lm")
  if(CMAKE_DL_LIBS)
    string(APPEND SWIGLU_PC_LIBS_PRIVATE " -l${CMAKE_DL_LIBS}")
  endif()
  # with the CUDA backend linked in: its runtimes (CMakeLists.txt)
  set(SWIGLU_CONFIG_STATIC_CUDA 0)
  if(SWIGLU_STATIC_CUDA_LIBS)
    set(SWIGLU_CONFIG_STATIC_CUDA 1)
    string(APPEND SWIGLU_PC_LIBS_PRIVATE " ${SWIGLU_STATIC_CUDA_LIBS}")
  endif()
else()
  set(SWIGLU_CONFIG_STATIC 0)
  set(SWIGLU_CONFIG_STATIC_CUDA 0)
  set(SWIGLU_PC_LIBS_PRIVATE "")
endif()

install(TARGETS swiglu EXPORT swiglu-targets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/swiglu DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(swiglu_cfg_dir ${CMAKE_INSTALL_LIBDIR}/cmake/swiglu)
install(EXPORT swiglu-targets NAMESPACE swiglu:: DESTINATION ${swiglu_cfg_dir})
set(SWIGLU_MODULE_DIR ${CMAKE_INSTALL_LIBDIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/swiglu-config.cmake.in
  ${PROJECT_BINARY_DIR}/swiglu-config.cmake INSTALL_DESTINATION ${swiglu_cfg_dir}
  PATH_VARS SWIGLU_MODULE_DIR)
# 0.x: the ABI may change with the minor version.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/swiglu-config-version.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/swiglu-config.cmake ${PROJECT_BINARY_DIR}/swiglu-config-version.cmake
  DESTINATION ${swiglu_cfg_dir})

# pkg-config: ${pcfiledir} (pkg-config and pkgconf both define it) keeps the
# file relocatable while the directories are relative to the prefix.
foreach(kind LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${kind}}")
    set(SWIGLU_PC_${kind} "${CMAKE_INSTALL_${kind}}")
  else()
    set(SWIGLU_PC_${kind} "\${prefix}/${CMAKE_INSTALL_${kind}}")
  endif()
endforeach()
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(SWIGLU_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH swiglu_pc_up "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
  string(REGEX REPLACE "/$" "" swiglu_pc_up "${swiglu_pc_up}")
  set(SWIGLU_PC_PREFIX "\${pcfiledir}/${swiglu_pc_up}")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/swiglu.pc.in ${PROJECT_BINARY_DIR}/swiglu.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/swiglu.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
