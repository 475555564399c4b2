# Locate the ns-3 libraries and headers shipped by the `ns3` wheel of the active Python
# environment and expose them as imported targets `ns3::<module>`.
#
# Why not find_package(ns3): the wheel's ns3Config.cmake and .pc files carry the wheel
# builder's paths (/usr/include/glib-2.0, /gcl-builds/...), so its targets fail to
# generate or link. We add the include directory and link each libns3.44-<module>.so by
# full path instead (see DESIGN.md, "Verified facts").

if(NOT Python_EXECUTABLE)
  find_package(Python 3.9 REQUIRED COMPONENTS Interpreter)
endif()

# find_spec does not import the package (importing ns3 would load cppyy).
execute_process(
  COMMAND "${Python_EXECUTABLE}" -c
          "import importlib.util as u; s = u.find_spec('ns3'); print(list(s.submodule_search_locations)[0] if s else '')"
  OUTPUT_VARIABLE NS3_WHEEL_DIR
  OUTPUT_STRIP_TRAILING_WHITESPACE
  RESULT_VARIABLE _ns3_rc)
if(NOT _ns3_rc EQUAL 0 OR NS3_WHEEL_DIR STREQUAL "")
  message(FATAL_ERROR "aqm-llm: the `ns3` wheel is not installed in ${Python_EXECUTABLE}; "
                      "run `pip install --no-deps ns3==3.44.post0` (or `make venv`).")
endif()

set(NS3_INCLUDE_DIR "${NS3_WHEEL_DIR}/include" CACHE PATH "ns-3 headers from the wheel" FORCE)
set(NS3_LIB_DIR "${NS3_WHEEL_DIR}/lib64" CACHE PATH "ns-3 libraries from the wheel" FORCE)
set(NS3_VERSION "44")  # libraries are named libns3.44-<module>.so

# Modules we use; each becomes ns3::<name>.
set(AQM_LLM_NS3_MODULES
    core network internet traffic-control point-to-point wifi applications mobility
    propagation spectrum stats antenna energy flow-monitor)
foreach(_mod IN LISTS AQM_LLM_NS3_MODULES)
  set(_lib "${NS3_LIB_DIR}/libns3.${NS3_VERSION}-${_mod}.so")
  if(NOT EXISTS "${_lib}")
    message(FATAL_ERROR "aqm-llm: ${_lib} not found; is ns3==3.44.post0 installed?")
  endif()
  if(NOT TARGET ns3::${_mod})
    add_library(ns3::${_mod} SHARED IMPORTED GLOBAL)
    set_target_properties(ns3::${_mod} PROPERTIES
      IMPORTED_LOCATION "${_lib}"
      IMPORTED_NO_SONAME FALSE
      INTERFACE_INCLUDE_DIRECTORIES "${NS3_INCLUDE_DIR}"
      # The wheel was built with logging and asserts on: inline header code must agree.
      INTERFACE_COMPILE_DEFINITIONS "NS3_LOG_ENABLE;NS3_ASSERT_ENABLE")
  endif()
endforeach()
message(STATUS "aqm-llm: ns-3 ${NS3_VERSION} from ${NS3_WHEEL_DIR}")
