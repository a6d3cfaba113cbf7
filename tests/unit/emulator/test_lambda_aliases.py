"""moto gap: no AWS::Lambda::Alias in CloudFormation. The emulator points every reference at the function."""

from __future__ import annotations

from loopline.emulator.lambda_aliases import replace_lambda_aliases


def test_an_alias_is_replaced_by_its_function_everywhere() -> None:
    # given a translated template with SAM's AutoPublishAlias resources and references to the alias
    template = {
        "Resources": {
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {}},
            "FnVersion1a2b": {"Type": "AWS::Lambda::Version", "Properties": {"FunctionName": {"Ref": "Fn"}}},
            "FnAliaslive": {"Type": "AWS::Lambda::Alias", "Properties": {
                "Name": "live", "FunctionName": {"Ref": "Fn"},
                "FunctionVersion": {"Fn::GetAtt": ["FnVersion1a2b", "Version"]}}},
            "Permission": {"Type": "AWS::Lambda::Permission", "Properties": {"FunctionName": {"Ref": "FnAliaslive"}}},
            "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Body": {"uri": {
                "Fn::Sub": "arn:aws:apigateway:${AWS::Region}:lambda:path/functions/${FnAliaslive}/invocations"}}}},
        },
        "Outputs": {"Alias": {"Value": {"Ref": "FnAliaslive"}}},
    }

    # when
    replaced = replace_lambda_aliases(template)

    # then the alias is gone, the version stays, and every reference names the function
    assert replaced == {"FnAliaslive": "Fn"}
    assert "FnAliaslive" not in template["Resources"]
    assert "FnVersion1a2b" in template["Resources"]
    assert template["Resources"]["Permission"]["Properties"]["FunctionName"] == {"Ref": "Fn"}
    uri = template["Resources"]["Api"]["Properties"]["Body"]["uri"]["Fn::Sub"]
    assert "${Fn}/invocations" in uri and "${AWS::Region}" in uri
    assert template["Outputs"]["Alias"]["Value"] == {"Ref": "Fn"}
