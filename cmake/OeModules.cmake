# Module targets and the compile-time boundary (SPEC §2).
#
# Every module is one library target whose include/ directory is visible only to targets that
# link it. Links between modules are PRIVATE, so headers never leak transitively: a module sees
# exactly the modules it names, and naming one the rule table forbids stops the configure step.

file(STRINGS "${PROJECT_SOURCE_DIR}/cmake/module-rules.txt" _oe_rule_lines)
foreach(_line IN LISTS _oe_rule_lines)
    string(STRIP "${_line}" _line)
    if(_line STREQUAL "" OR _line MATCHES "^#")
        continue()
    endif()
    string(REGEX REPLACE "[ \t]+" ";" _fields "${_line}")
    list(POP_FRONT _fields _module _dir)
    set(OE_RULE_${_module} "${_fields}")
endforeach()

# oe_module_may_link(<module> <dependency-module> <out-var>)
function(oe_module_may_link module dep out)
    if(NOT DEFINED OE_RULE_${module})
        message(FATAL_ERROR "module '${module}' is not in cmake/module-rules.txt")
    endif()
    set(_allowed "${OE_RULE_${module}}")
    if("*" IN_LIST _allowed OR "${dep}" IN_LIST _allowed)
        set(${out} TRUE PARENT_SCOPE)
    else()
        set(${out} FALSE PARENT_SCOPE)
    endif()
endfunction()

# oe_add_module(<module> SOURCES ... [MODULES m1 m2] [PUBLIC_MODULES m3] [LIBS third-party...])
#   Creates target oe_<module>. MODULES are other oe modules (checked against the rule table);
#   LIBS are third-party libraries, linked PUBLIC when the module's headers expose them.
function(oe_add_module module)
    cmake_parse_arguments(ARG "" "" "SOURCES;MODULES;PUBLIC_MODULES;LIBS;PUBLIC_LIBS" ${ARGN})
    set(_target oe_${module})
    add_library(${_target} STATIC ${ARG_SOURCES})
    target_include_directories(${_target} PUBLIC "${CMAKE_CURRENT_SOURCE_DIR}/include"
                                          PRIVATE "${CMAKE_CURRENT_SOURCE_DIR}")
    foreach(_dep IN LISTS ARG_MODULES)
        oe_module_may_link(${module} ${_dep} _ok)
        if(NOT _ok)
            message(FATAL_ERROR
                "module '${module}' may not depend on '${_dep}' (cmake/module-rules.txt, SPEC §2)")
        endif()
        # The kernel is everyone's vocabulary; every other module link stays PRIVATE.
        if(_dep STREQUAL "kernel" OR _dep STREQUAL "events")
            target_link_libraries(${_target} PUBLIC oe_${_dep})
        else()
            target_link_libraries(${_target} PRIVATE oe_${_dep})
        endif()
    endforeach()
    # PUBLIC_MODULES are modules this module's own public headers include: whoever links it
    # sees them too, and must therefore be allowed to (checked when that module is added).
    foreach(_dep IN LISTS ARG_PUBLIC_MODULES)
        oe_module_may_link(${module} ${_dep} _ok)
        if(NOT _ok)
            message(FATAL_ERROR
                "module '${module}' may not depend on '${_dep}' (cmake/module-rules.txt, SPEC §2)")
        endif()
        target_link_libraries(${_target} PUBLIC oe_${_dep})
    endforeach()
    target_link_libraries(${_target} PRIVATE ${ARG_LIBS} PUBLIC ${ARG_PUBLIC_LIBS})
    oe_set_warnings(${_target})
endfunction()

function(oe_set_warnings target)
    target_compile_options(${target} PRIVATE
        -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Woverloaded-virtual
        -Wcast-align -Wimplicit-fallthrough -Werror)
endfunction()
