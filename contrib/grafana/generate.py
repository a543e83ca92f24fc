"""netd's Grafana dashboards as code: ``python contrib/grafana/generate.py`` writes
``contrib/grafana/dashboards/*.json`` with Grafana's own builders (grafana-foundation-sdk,
for Grafana 11.6; a dev dependency). Commit the JSON with the change; tests/noc checks that
the files are what this script writes, and that every query returns data from a real
Prometheus scraping a real netd.

Every metric name is one netd exports (grep ``Counter(``/``Gauge(``/``Histogram(`` under
daemons/); the SNMP interfaces dashboard uses snmp_exporter's if_mib names and labels
(``ifHCInOctets{ifIndex, ifName, ifDescr, ifAlias}``), so it works on netd's
``/snmp/metrics`` (the device in the ``target`` label) and on snmp_exporter's scrapes (the
device in ``instance``): pick the label in its "device label" variable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    GraphThresholdsStyleMode,
    LegendDisplayMode,
    LegendPlacement,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

OUT = Path(__file__).resolve().parent / "dashboards"
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
J = 'job=~"$job"'  # every netd query is limited to the jobs picked in the job variable
R = "$__rate_interval"


def q(expr: str, legend: str = "") -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).datasource(DS)
    return query.legend_format(legend) if legend else query


def graph(
    title: str,
    queries: Iterable[prometheus.Dataquery],
    unit: str = "short",
    w: int = 12,
    description: str = "",
    thresholds: Iterable[tuple[float | None, str]] = (),
) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).datasource(DS).unit(unit).span(w).height(8)
    if description:
        panel = panel.description(description)
    for ref, query in zip("ABCDEFGH", queries, strict=False):
        panel = panel.with_target(query.ref_id(ref))
    steps = [Threshold(value, color) for value, color in thresholds]
    if steps:
        panel = panel.thresholds(
            dashboard.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps)
        ).thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.LINE)
        )
    return panel.legend(
        common_builders.VizLegendOptions()
        .show_legend(True)
        .display_mode(LegendDisplayMode.LIST)
        .placement(LegendPlacement.BOTTOM)
    )


def single(title: str, query: prometheus.Dataquery, unit: str = "short", w: int = 4) -> stat.Panel:
    panel = stat.Panel().title(title).datasource(DS).unit(unit).span(w).height(4)
    return panel.with_target(query.ref_id("A"))


def listing(title: str, query: prometheus.Dataquery, w: int = 24) -> table.Panel:
    return (
        table.Panel()
        .title(title)
        .datasource(DS)
        .span(w)
        .height(8)
        .with_target(query.ref_id("A").instant().format(PromQueryFormat.TABLE))
    )


def new(uid: str, title: str, description: str) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["netd"])
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("browser")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus")
        )
        .with_variable(label_variable("job", "label_values(netd_build_info, job)", "netd job"))
    )


def label_variable(name: str, query: str, label: str) -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(DS)
        .query(query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .include_all(True)
        .all_value(".*")
        .multi(True)
        .current(VariableOption(selected=True, text="All", value="$__all"))
    )


# --- the dashboards ------------------------------------------------------------------------


def health() -> dashboard.Dashboard:
    return (
        new("netd-health", "netd / Daemons", "Every netd process: up, ready, stores, daemons.")
        .with_row(dashboard.Row("Processes"))
        .with_panel(single("Processes up", q(f"sum(up{{{J}}})")))
        .with_panel(single("Ready", q(f"sum(netd_ready{{{J}}})")))
        .with_panel(single("Live RADIUS sessions", q(f"max(netd_sessions_live{{{J}}})")))
        .with_panel(single("Daemons running", q(f"sum(netd_daemon_up{{{J}}})")))
        .with_panel(single("Draining", q(f"sum(netd_draining{{{J}}})")))
        .with_panel(
            single(
                "Heartbeat failures (1h)",
                q(f"sum(increase(netd_heartbeat_failures_total{{{J}}}[1h]))"),
            )
        )
        .with_panel(listing("Versions", q(f"netd_build_info{{{J}}}")))
        .with_panel(
            graph(
                "Ready and stores",
                [
                    q(f"netd_ready{{{J}}}", "{{instance}} ready"),
                    q(f"netd_store_up{{{J}}}", "{{instance}} {{store}}"),
                ],
                w=12,
            )
        )
        .with_panel(graph("Daemons", [q(f"netd_daemon_up{{{J}}}", "{{instance}} {{daemon}}")]))
        .with_row(dashboard.Row("Admin API"))
        .with_panel(
            graph(
                "API requests / s by status",
                [q(f"sum by (status) (rate(netd_api_requests_total{{{J}}}[{R}]))", "{{status}}")],
                "reqps",
            )
        )
        .with_panel(
            graph(
                "API latency",
                [
                    q(
                        f"histogram_quantile(0.5, sum by (le) (rate(netd_api_request_seconds_bucket{{{J}}}[{R}])))",
                        "p50",
                    ),
                    q(
                        f"histogram_quantile(0.99, sum by (le) (rate(netd_api_request_seconds_bucket{{{J}}}[{R}])))",
                        "p99",
                    ),
                ],
                "s",
            )
        )
        .with_row(dashboard.Row("Process"))
        .with_panel(
            graph(
                "CPU",
                [q(f"rate(process_cpu_seconds_total{{{J}}}[{R}])", "{{instance}}")],
                "percentunit",
                w=8,
            )
        )
        .with_panel(
            graph(
                "Resident memory",
                [q(f"process_resident_memory_bytes{{{J}}}", "{{instance}}")],
                "bytes",
                w=8,
            )
        )
        .with_panel(
            graph(
                "Policy reloads (1h) by result",
                [
                    q(
                        f"sum by (instance, result) (increase(netd_policy_reloads_total{{{J}}}[1h]))",
                        "{{instance}} {{result}}",
                    )
                ],
                w=8,
            )
        )
    )


def radius() -> dashboard.Dashboard:
    accepted = 'code=~"ACCESS_ACCEPT|ACCESS_REJECT"'
    return (
        new(
            "netd-radius",
            "netd / RADIUS",
            "Authentication: requests, answers, rejects by reason, drops by reason, latency.",
        )
        .with_panel(
            single(
                "Access-Requests / s",
                q(f'sum(rate(netd_radius_requests_total{{{J},code="ACCESS_REQUEST"}}[{R}]))'),
                "reqps",
            )
        )
        .with_panel(
            single(
                "Reject ratio",
                q(
                    f'sum(rate(netd_radius_responses_total{{{J},code="ACCESS_REJECT"}}[{R}])) / '
                    f"sum(rate(netd_radius_responses_total{{{J},{accepted}}}[{R}]))"
                ),
                "percentunit",
            )
        )
        .with_panel(
            single("Drops / s", q(f"sum(rate(netd_radius_drops_total{{{J}}}[{R}]))"), "pps")
        )
        .with_panel(single("In flight", q(f"sum(netd_radius_inflight{{{J}}})")))
        .with_panel(single("In flight (peak)", q(f"max(netd_radius_inflight_peak{{{J}}})")))
        .with_panel(single("NAS clients", q(f"max(netd_radius_nas_clients{{{J}}})")))
        .with_panel(
            graph(
                "Requests / s by code",
                [q(f"sum by (code) (rate(netd_radius_requests_total{{{J}}}[{R}]))", "{{code}}")],
                "reqps",
            )
        )
        .with_panel(
            graph(
                "Answers / s by code",
                [q(f"sum by (code) (rate(netd_radius_responses_total{{{J}}}[{R}]))", "{{code}}")],
                "reqps",
            )
        )
        .with_panel(
            graph(
                "Rejects / s by reason",
                [q(f"sum by (reason) (rate(netd_radius_rejects_total{{{J}}}[{R}]))", "{{reason}}")],
                "reqps",
                description="Why Access-Requests were rejected (bad_password, "
                "unknown_user, suspended, mac_mismatch...).",
            )
        )
        .with_panel(
            graph(
                "Drops / s by NAS and reason",
                [
                    q(
                        f"sum by (nas, reason) (rate(netd_radius_drops_total{{{J}}}[{R}]))",
                        "{{nas}} {{reason}}",
                    )
                ],
                "pps",
                description="Datagrams dropped without an answer: bad_authenticator is a "
                "wrong shared secret, unknown_nas a NAS not configured.",
            )
        )
        .with_panel(
            graph(
                "Latency by method",
                [
                    q(
                        f"histogram_quantile(0.5, sum by (le, method) (rate(netd_radius_request_seconds_bucket{{{J}}}[{R}])))",
                        "p50 {{method}}",
                    ),
                    q(
                        f"histogram_quantile(0.99, sum by (le, method) (rate(netd_radius_request_seconds_bucket{{{J}}}[{R}])))",
                        "p99 {{method}}",
                    ),
                ],
                "s",
            )
        )
        .with_panel(
            graph(
                "Retransmits and subscriber lookups",
                [
                    q(
                        f"sum by (nas) (rate(netd_radius_duplicates_total{{{J}}}[{R}]))",
                        "retransmits {{nas}}",
                    ),
                    q(
                        f"sum by (source) (rate(netd_radius_subscriber_lookups_total{{{J}}}[{R}]))",
                        "lookups from {{source}}",
                    ),
                ],
                "ops",
            )
        )
    )


def accounting() -> dashboard.Dashboard:
    return (
        new(
            "netd-accounting",
            "netd / Accounting",
            "Accounting records into the ledger: rates, batches, commit latency, the spool.",
        )
        .with_panel(single("Live sessions", q(f"max(netd_sessions_live{{{J}}})")))
        .with_panel(
            single(
                "Records / s", q(f"sum(rate(netd_radius_acct_records_total{{{J}}}[{R}]))"), "ops"
            )
        )
        .with_panel(
            single(
                "Commit p99",
                q(
                    f"histogram_quantile(0.99, sum by (le) (rate(netd_radius_acct_commit_seconds_bucket{{{J}}}[{R}])))"
                ),
                "s",
            )
        )
        .with_panel(
            single("Spooled (1h)", q(f"sum(increase(netd_radius_acct_spooled_total{{{J}}}[1h]))"))
        )
        .with_panel(
            single(
                "Quarantined (1h)",
                q(f"sum(increase(netd_radius_acct_quarantined_total{{{J}}}[1h]))"),
            )
        )
        .with_panel(
            single(
                "Sessions reaped (1h)",
                q(f"sum(increase(netd_radius_sessions_reaped_total{{{J}}}[1h]))"),
            )
        )
        .with_panel(
            graph(
                "Records / s by status",
                [
                    q(
                        f"sum by (status) (rate(netd_radius_acct_records_total{{{J}}}[{R}]))",
                        "{{status}}",
                    )
                ],
                "ops",
            )
        )
        .with_panel(graph("Live sessions", [q(f"max(netd_sessions_live{{{J}}})", "live")]))
        .with_panel(
            graph(
                "Ledger commit latency",
                [
                    q(
                        f"histogram_quantile(0.5, sum by (le) (rate(netd_radius_acct_commit_seconds_bucket{{{J}}}[{R}])))",
                        "p50",
                    ),
                    q(
                        f"histogram_quantile(0.99, sum by (le) (rate(netd_radius_acct_commit_seconds_bucket{{{J}}}[{R}])))",
                        "p99",
                    ),
                ],
                "s",
                thresholds=[(None, "green"), (0.5, "orange"), (5, "red")],
                description="A record is acknowledged only once committed; past "
                "radius.acct_commit_timeout (5 s) its batch is spooled to local disk.",
            )
        )
        .with_panel(
            graph(
                "Records per batch",
                [
                    q(
                        f"histogram_quantile(0.5, sum by (le) (rate(netd_radius_acct_batch_records_bucket{{{J}}}[{R}])))",
                        "p50",
                    ),
                    q(
                        f"histogram_quantile(0.99, sum by (le) (rate(netd_radius_acct_batch_records_bucket{{{J}}}[{R}])))",
                        "p99",
                    ),
                ],
            )
        )
        .with_panel(
            graph(
                "Spool: in and replayed",
                [
                    q(f"sum(rate(netd_radius_acct_spooled_total{{{J}}}[{R}]))", "spooled"),
                    q(f"sum(rate(netd_radius_acct_replayed_total{{{J}}}[{R}]))", "replayed"),
                    q(f"sum(rate(netd_radius_acct_quarantined_total{{{J}}}[{R}]))", "quarantined"),
                ],
                "ops",
                w=24,
            )
        )
    )


def acs() -> dashboard.Dashboard:
    return (
        new("netd-acs", "netd / ACS", "The TR-069 ACS: CWMP sessions, RPCs, CPE faults.")
        .with_panel(single("Open sessions", q(f"sum(netd_acs_sessions_live{{{J}}})")))
        .with_panel(
            single("Sessions / s", q(f"sum(rate(netd_acs_sessions_total{{{J}}}[{R}]))"), "ops")
        )
        .with_panel(
            single(
                "Faults / session",
                q(
                    f"sum(rate(netd_acs_cpe_faults_total{{{J}}}[{R}])) / "
                    f"sum(rate(netd_acs_sessions_total{{{J}}}[{R}]))"
                ),
                "percentunit",
            )
        )
        .with_panel(
            single("Rate-limited (1h)", q(f"sum(increase(netd_acs_rate_limited_total{{{J}}}[1h]))"))
        )
        .with_panel(single("Sources tracked", q(f"sum(netd_acs_rate_limit_sources{{{J}}})")))
        .with_panel(
            single(
                "Session p90",
                q(
                    f"histogram_quantile(0.9, sum by (le) (rate(netd_acs_session_seconds_bucket{{{J}}}[{R}])))"
                ),
                "s",
            )
        )
        .with_panel(
            graph(
                "Sessions / s by outcome",
                [q(f"sum by (outcome) (rate(netd_acs_sessions_total{{{J}}}[{R}]))", "{{outcome}}")],
                "ops",
            )
        )
        .with_panel(
            graph(
                "Messages / s by method",
                [q(f"sum by (method) (rate(netd_acs_messages_total{{{J}}}[{R}]))", "{{method}}")],
                "ops",
            )
        )
        .with_panel(
            graph(
                "CPE faults / s by code",
                [q(f"sum by (code) (rate(netd_acs_cpe_faults_total{{{J}}}[{R}]))", "{{code}}")],
                "ops",
                description="Faults CPEs answered (9000-9032: 9005 invalid parameter name, "
                "9002 internal error...).",
            )
        )
        .with_panel(
            graph(
                "Requests refused / s by reason",
                [q(f"sum by (reason) (rate(netd_acs_rejects_total{{{J}}}[{R}]))", "{{reason}}")],
                "ops",
            )
        )
    )


def snmp() -> dashboard.Dashboard:
    dev = '$by=~"$device"'
    sel = f'{dev}, ifName=~"$interface"'
    by = (
        dashboard.CustomVariable("by")
        .label("device label")
        .values("target,instance")
        .current(VariableOption(selected=True, text="target", value="target"))
        .description("target: netd's /snmp/metrics; instance: snmp_exporter-style scrapes")
    )
    device = label_variable("device", "label_values(ifOperStatus, $by)", "device")
    interface = label_variable(
        "interface", 'label_values(ifOperStatus{$by=~"$device"}, ifName)', "interface"
    )
    return (
        new(
            "netd-snmp-interfaces",
            "netd / SNMP interfaces",
            "IF-MIB interfaces with "
            "snmp_exporter's if_mib names and labels, and the poller's own health.",
        )
        .with_variable(by)
        .with_variable(device)
        .with_variable(interface)
        .with_panel(single("Interfaces up", q(f"sum(ifOperStatus{{{sel}}} == bool 1)")))
        .with_panel(single("Interfaces not up", q(f"sum(ifOperStatus{{{sel}}} != bool 1)")))
        .with_panel(single("Targets polled", q(f"sum(netd_snmp_targets{{{J}}})")))
        .with_panel(single("Targets down", q(f"sum(netd_snmp_target_up{{{J}}} == bool 0)")))
        .with_panel(single("Polls / s", q(f"sum(rate(netd_snmp_polls_total{{{J}}}[{R}]))"), "ops"))
        .with_panel(single("Traps / s", q(f"sum(rate(netd_snmp_traps_total{{{J}}}[{R}]))"), "ops"))
        .with_panel(
            graph(
                "Traffic in",
                [q(f"rate(ifHCInOctets{{{sel}}}[{R}]) * 8", "{{$by}} {{ifName}}")],
                "bps",
            )
        )
        .with_panel(
            graph(
                "Traffic out",
                [q(f"rate(ifHCOutOctets{{{sel}}}[{R}]) * 8", "{{$by}} {{ifName}}")],
                "bps",
            )
        )
        .with_panel(
            graph(
                "Utilisation (of ifHighSpeed)",
                [
                    q(
                        f"rate(ifHCInOctets{{{sel}}}[{R}]) * 8 / ((ifHighSpeed{{{sel}}} > 0) * 1e6)",
                        "{{$by}} {{ifName}} in",
                    ),
                    q(
                        f"rate(ifHCOutOctets{{{sel}}}[{R}]) * 8 / ((ifHighSpeed{{{sel}}} > 0) * 1e6)",
                        "{{$by}} {{ifName}} out",
                    ),
                ],
                "percentunit",
                thresholds=[(None, "green"), (0.8, "orange"), (0.95, "red")],
            )
        )
        .with_panel(
            graph(
                "Packets / s",
                [
                    q(f"rate(ifHCInUcastPkts{{{sel}}}[{R}])", "{{$by}} {{ifName}} in"),
                    q(f"rate(ifHCOutUcastPkts{{{sel}}}[{R}])", "{{$by}} {{ifName}} out"),
                ],
                "pps",
            )
        )
        .with_panel(
            graph(
                "Errors and discards / s",
                [
                    q(f"rate(ifInErrors{{{sel}}}[{R}])", "{{$by}} {{ifName}} in errors"),
                    q(f"rate(ifOutErrors{{{sel}}}[{R}])", "{{$by}} {{ifName}} out errors"),
                    q(f"rate(ifInDiscards{{{sel}}}[{R}])", "{{$by}} {{ifName}} in discards"),
                    q(f"rate(ifOutDiscards{{{sel}}}[{R}])", "{{$by}} {{ifName}} out discards"),
                ],
                "pps",
            )
        )
        .with_panel(
            graph(
                "Oper status (1 up, 2 down, 7 lowerLayerDown)",
                [q(f"ifOperStatus{{{sel}}}", "{{$by}} {{ifName}}")],
            )
        )
        .with_panel(
            listing(
                "Interfaces",
                q(f"max by ($by, ifIndex, ifName, ifDescr, ifAlias) (ifHighSpeed{{{sel}}})"),
            )
        )
        .with_row(dashboard.Row("Poller"))
        .with_panel(
            graph("Targets answering", [q(f"netd_snmp_target_up{{{J}}}", "{{target}}")], w=8)
        )
        .with_panel(
            graph(
                "Polls / s by result",
                [q(f"sum by (result) (rate(netd_snmp_polls_total{{{J}}}[{R}]))", "{{result}}")],
                "ops",
                w=8,
            )
        )
        .with_panel(
            graph(
                "Poll duration and lateness",
                [
                    q(f"netd_snmp_poll_duration_seconds{{{J}}}", "{{target}} took"),
                    q(f"netd_snmp_poll_lateness_seconds{{{J}}}", "{{target}} late"),
                ],
                "s",
                w=8,
            )
        )
    )


def voltha() -> dashboard.Dashboard:
    st = f'{J}, stack=~"$stack"'
    return (
        new(
            "netd-voltha",
            "netd / VOLTHA optics and PON",
            "VOLTHA stacks, OLTs and ONUs: "
            "optical levels (alarm thresholds voltha.onu_rx_low/high), PON traffic, alarms.",
        )
        .with_variable(label_variable("stack", "label_values(netd_voltha_up, stack)", "stack"))
        .with_panel(single("Stacks up", q(f"sum(netd_voltha_up{{{st}}})")))
        .with_panel(
            single(
                "ONUs active",
                q(f'sum(netd_voltha_devices{{{st}, kind="onu", oper_status="ACTIVE"}})'),
            )
        )
        .with_panel(
            single(
                "ONUs out of range",
                q(
                    f'count(netd_voltha_onu_optics{{{st}, value="rx_dbm"}} < -27 or '
                    f'netd_voltha_onu_optics{{{st}, value="rx_dbm"}} > -8) or vector(0)'
                ),
            )
        )
        .with_panel(
            single(
                "Alarms raised (24h)", q(f"sum(increase(netd_voltha_alarms_total{{{st}}}[24h]))")
            )
        )
        .with_panel(
            single(
                "Sync p90",
                q(
                    f"histogram_quantile(0.9, sum by (le) (rate(netd_voltha_sync_seconds_bucket{{{st}}}[{R}])))"
                ),
                "s",
            )
        )
        .with_panel(
            single(
                "Syncs failing / s",
                q(f'sum(rate(netd_voltha_syncs_total{{{st}, result!="ok"}}[{R}])) or vector(0)'),
                "ops",
            )
        )
        .with_panel(
            graph(
                "ONU receive power",
                [q(f'netd_voltha_onu_optics{{{st}, value="rx_dbm"}}', "{{serial}}")],
                "dBm",
                thresholds=[(None, "red"), (-27, "green"), (-8, "red")],
            )
        )
        .with_panel(
            graph(
                "OLT receive power from each ONU",
                [q(f"netd_voltha_olt_rx_power_dbm{{{st}}}", "{{olt}} pon {{pon}} {{serial}}")],
                "dBm",
                thresholds=[(None, "red"), (-28, "green"), (-8, "red")],
            )
        )
        .with_panel(
            graph(
                "ONU transmit power",
                [q(f'netd_voltha_onu_optics{{{st}, value="tx_dbm"}}', "{{serial}}")],
                "dBm",
                w=8,
            )
        )
        .with_panel(
            graph(
                "ONU temperature",
                [q(f'netd_voltha_onu_optics{{{st}, value="temperature_c"}}', "{{serial}}")],
                "celsius",
                w=8,
            )
        )
        .with_panel(
            graph(
                "ONU laser bias and supply",
                [
                    q(f'netd_voltha_onu_optics{{{st}, value="bias_ma"}}', "{{serial}} mA"),
                    q(f'netd_voltha_onu_optics{{{st}, value="voltage_v"}}', "{{serial}} V"),
                ],
                w=8,
            )
        )
        .with_panel(
            graph(
                "PON port traffic",
                [
                    q(
                        f'rate(netd_voltha_pon_port_stat{{{st}, stat=~"rx_bytes|tx_bytes"}}[{R}]) * 8',
                        "{{olt}} {{port}} {{stat}}",
                    )
                ],
                "bps",
            )
        )
        .with_panel(
            graph(
                "ONU PON errors / s",
                [
                    q(
                        f'rate(netd_voltha_onu_pon_counter{{{st}, counter=~".*error.*"}}[{R}])',
                        "{{serial}} {{counter}}",
                    )
                ],
                "ops",
            )
        )
        .with_panel(
            graph(
                "Devices by kind and status",
                [
                    q(
                        f"sum by (kind, oper_status) (netd_voltha_devices{{{st}}})",
                        "{{kind}} {{oper_status}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Alarms raised / h by alarm",
                [
                    q(
                        f"sum by (alarm) (increase(netd_voltha_alarms_total{{{st}}}[1h]))",
                        "{{alarm}}",
                    )
                ],
            )
        )
    )


DASHBOARDS = {
    "netd-health": health,
    "netd-radius": radius,
    "netd-accounting": accounting,
    "netd-acs": acs,
    "netd-snmp-interfaces": snmp,
    "netd-voltha": voltha,
}


def render(name: str) -> str:
    built = DASHBOARDS[name]().build()
    return json.dumps(built, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else OUT
    out.mkdir(parents=True, exist_ok=True)
    for name in DASHBOARDS:
        (out / f"{name}.json").write_text(render(name))
        print(f"{out / name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
