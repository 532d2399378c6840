-- Send every stable study to the AI node, except the node's own results coming back.
function OnStableStudy(studyId, tags, metadata)
  local series = ParseJson(RestApiGet('/studies/' .. studyId .. '/series?expand'))
  for _, s in ipairs(series) do
    local modality = s['MainDicomTags']['Modality']
    if modality ~= 'SR' and modality ~= 'OT' then
      RestApiPost('/modalities/ainode/store', s['ID'])
    end
  end
end
