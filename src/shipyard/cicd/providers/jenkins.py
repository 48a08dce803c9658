"""Jenkins over its remote access API (``/api/json``, ``buildWithParameters``, queue items)."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from shipyard.cicd.parameters import parameter
from shipyard.cicd.providers.base import (
    BuildState,
    BuildStatus,
    CicdClient,
    JobRef,
    RemoteJob,
)
from shipyard.outbound.api import ProviderApi, RetryPolicy, segment
from shipyard.outbound.errors import UpstreamFailed, UpstreamNotFound
from shipyard.outbound.links import link_under

MAX_FOLDER_DEPTH = 10
_PARAMS_TREE = (
    "property[parameterDefinitions[name,type,description,choices,defaultParameterValue[value]]]"
)
_JOBS_TREE = f"jobs[name,description,_class,buildable,color,jobs[name],{_PARAMS_TREE}]"
_QUEUE_ID = re.compile(r"/queue/item/(\d+)/?$")
_TYPES = {
    "StringParameterDefinition": "string",
    "TextParameterDefinition": "string",
    "BooleanParameterDefinition": "boolean",
    "ChoiceParameterDefinition": "choice",
    "PasswordParameterDefinition": "password",
}
_RESULTS: dict[str, BuildStatus] = {
    "SUCCESS": "success",
    "FAILURE": "failed",
    "UNSTABLE": "failed",
    "NOT_BUILT": "failed",
    "ABORTED": "cancelled",
}


def job_url_path(path: str) -> str:
    """``team/app/deploy`` -> ``job/team/job/app/job/deploy/``."""
    return "".join(f"job/{segment(part)}/" for part in path.split("/") if part)


def normalise_parameters(job: dict[str, Any]) -> list[dict[str, Any]]:
    definitions: list[dict[str, Any]] = []
    for prop in job.get("property") or []:
        definitions.extend(prop.get("parameterDefinitions") or [])
    result = []
    for definition in definitions:
        kind = _TYPES.get(str(definition.get("type", "")), "string")
        default = (definition.get("defaultParameterValue") or {}).get("value")
        if kind == "boolean" and isinstance(default, str):
            default = default.lower() == "true"
        result.append(
            parameter(
                str(definition.get("name", "")),
                kind,
                default=default,
                choices=[str(c) for c in definition.get("choices") or []] or None,
                description=definition.get("description"),
            )
        )
    return result


def form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class JenkinsClient(CicdClient):
    label = "Jenkins"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        username: str,
        api_token: str,
        retry_seconds: float,
        timeout: float | None = None,
    ) -> None:
        self._token = api_token
        # Build pages live under the address Shipyard talks to.
        self.link_base = base_url.rstrip("/") + "/"
        self.api = ProviderApi(
            http,
            label=self.label,
            base_url=base_url,
            retry=RetryPolicy(retry_seconds),
            auth=httpx.BasicAuth(username, api_token),
            secrets=(api_token,),
            timeout=timeout,
        )
        self._crumb_headers: dict[str, str] | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self._token,)

    async def check(self) -> str:
        response = await self.api.request("GET", "me/api/json")
        body = response.json()
        version = response.headers.get("x-jenkins")
        who = body.get("fullName") or body.get("id") or "unknown user"
        return f"authenticated as {who}" + (f" on Jenkins {version}" if version else "")

    async def list_jobs(self) -> list[RemoteJob]:
        jobs: list[RemoteJob] = []
        await self._walk("", [], jobs)
        return jobs

    async def _walk(self, folder: str, prefix: list[str], out: list[RemoteJob]) -> None:
        response = await self.api.request(
            "GET", f"{job_url_path(folder)}api/json", params={"tree": _JOBS_TREE}
        )
        for item in response.json().get("jobs") or []:
            name = str(item.get("name", ""))
            path = [*prefix, name]
            if "jobs" in item:
                if len(path) < MAX_FOLDER_DEPTH:
                    await self._walk("/".join(path), path, out)
                continue
            full = "/".join(path)
            out.append(
                RemoteJob(
                    external_id=full,
                    name=name,
                    path=full,
                    description=item.get("description") or None,
                    parameters=normalise_parameters(item),
                    # A disabled job answers "buildable": false (and color "disabled").
                    buildable=item.get("buildable") is not False
                    and item.get("color") != "disabled",
                )
            )

    async def _post(self, path: str, *, data: dict[str, str] | None = None) -> httpx.Response:
        """POST, fetching a CSRF crumb first when Jenkins answers that it wants one."""
        for attempt in range(2):
            response = await self.api.request(
                "POST",
                path,
                ok=(200, 201, 202, 204, 302, 303),
                passthrough=(403,),
                data=data,
                headers=self._crumb_headers or {},
                idempotent=False,
            )
            if response.status_code != 403:
                return response
            if attempt == 0 and "crumb" in response.text.lower():
                await self._fetch_crumb()
                continue
            raise self.api.error_for(response)
        raise UpstreamFailed("Jenkins kept refusing the CSRF crumb", provider=self.label)

    async def _fetch_crumb(self) -> None:
        response = await self.api.request("GET", "crumbIssuer/api/json")
        body = response.json()
        headers = {str(body["crumbRequestField"]): str(body["crumb"])}
        # Crumbs are bound to the web session that issued them.
        cookies = "; ".join(f"{k}={v}" for k, v in response.cookies.items())
        if cookies:
            headers["Cookie"] = cookies
        self._crumb_headers = headers

    async def trigger(self, job: JobRef, parameters: dict[str, Any]) -> dict[str, Any]:
        path = job.path or job.external_id
        if job.parameters:
            form = {name: form_value(value) for name, value in parameters.items()}
            response = await self._post(f"{job_url_path(path)}buildWithParameters", data=form)
        else:
            response = await self._post(f"{job_url_path(path)}build")
        location = response.headers.get("location", "")
        match = _QUEUE_ID.search(location)
        if match is None:
            raise UpstreamFailed(
                f"Jenkins accepted the build of {path} but gave no queue item "
                f"(Location: {location!r})",
                provider=self.label,
            )
        return {"job_path": path, "queue_id": int(match.group(1)), "queued_at": time.time()}

    async def poll(self, tracking: dict[str, Any]) -> BuildState:
        if "number" not in tracking:
            response = await self.api.request("GET", f"queue/item/{tracking['queue_id']}/api/json")
            item = response.json()
            if item.get("cancelled"):
                return BuildState("cancelled", detail="the queue item was cancelled in Jenkins")
            executable = item.get("executable")
            if not executable:
                return BuildState("queued", detail=item.get("why") or "waiting in the queue")
            tracking["number"] = int(executable["number"])
            tracking["url"] = executable.get("url")
        build = await self._build(tracking)
        number = str(tracking["number"])
        url = self.build_link(tracking, tracking.get("url") or build.get("url"))
        if build.get("building") or build.get("result") is None:
            return BuildState("running", number=number, url=url)
        result = str(build["result"])
        return BuildState(
            _RESULTS.get(result, "failed"),
            number=number,
            url=url,
            detail=f"Jenkins result: {result}",
        )

    def build_link(self, tracking: dict[str, Any], reported: object) -> str:
        """The build's page: Jenkins's own link when it lies under our address, else ours.

        Jenkins reports links from its configured root URL, which may name another host than
        the one Shipyard reaches (or, from a hostile server, not be a web address at all).
        """
        kept = link_under(reported if isinstance(reported, str) else None, self.link_base)
        return kept or f"{self.link_base}{job_url_path(tracking['job_path'])}{tracking['number']}/"

    async def _build(self, tracking: dict[str, Any]) -> dict[str, Any]:
        path = f"{job_url_path(tracking['job_path'])}{tracking['number']}/api/json"
        response = await self.api.request(
            "GET", path, params={"tree": "number,url,building,result,duration"}
        )
        body: dict[str, Any] = response.json()
        return body

    async def console(self, tracking: dict[str, Any]) -> str:
        if "number" not in tracking:
            return ""
        start = int(tracking.get("console_offset", 0))
        response = await self.api.request(
            "GET",
            f"{job_url_path(tracking['job_path'])}{tracking['number']}/logText/progressiveText",
            params={"start": start},
        )
        size = response.headers.get("x-text-size")
        tracking["console_offset"] = (
            int(size) if size and size.isascii() and size.isdigit() else start
        )
        return response.text

    async def cancel(self, tracking: dict[str, Any]) -> bool:
        try:
            if "number" in tracking:
                await self._post(f"{job_url_path(tracking['job_path'])}{tracking['number']}/stop")
            else:
                await self._post(f"queue/cancelItem?id={int(tracking['queue_id'])}")
        except UpstreamNotFound:
            return False
        return True
